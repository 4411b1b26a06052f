import { AwsError, DeadlineError, firstLine, isKeymakerError, type AwsErrorCode, type KeymakerError } from './errors';

/** Maps what an AWS SDK v3 call threw to a typed KeymakerError (idempotent). */
export function toAwsError(error: unknown, operation: string): KeymakerError {
  if (isKeymakerError(error)) return error;
  const err = (error ?? {}) as { name?: string; code?: string; message?: string; Code?: string; $metadata?: unknown };
  const rawName = String(err.Code ?? err.name ?? '');
  const name = rawName.replace(/Exception$/, '');
  const message = firstLine(String(err.message ?? error));
  const make = (code: AwsErrorCode, text: string) =>
    new AwsError(code, text, { cause: error, awsCode: rawName || undefined, operation });

  switch (name) {
    case 'NoSuchEntity':
      return make('NO_SUCH_ENTITY', `${operation}: ${message}`);
    case 'LimitExceeded':
      return make('LIMIT_EXCEEDED', `${operation}: ${message}`);
    case 'AccessDenied':
    case 'UnauthorizedOperation':
    case 'AccessDeniedError':
      return make(
        'ACCESS_DENIED',
        `${operation} was denied: ${message}; grant the permission ${permissionFor(operation)}`,
      );
    case 'Throttling':
    case 'RequestLimitExceeded':
    case 'TooManyRequests':
    case 'SlowDown':
      return make('THROTTLED', `${operation} was throttled by AWS; try again later`);
    case 'InvalidClientTokenId':
    case 'ExpiredToken':
    case 'SignatureDoesNotMatch':
    case 'UnrecognizedClient':
      return make('NO_CREDENTIALS', `AWS credentials were refused (${rawName}); refresh or fix your credentials`);
    case 'CredentialsProviderError':
      return make(
        'NO_CREDENTIALS',
        'no AWS credentials found; configure them (AWS_PROFILE, aws configure, or an instance role)',
      );
    case 'TimeoutError':
    case 'RequestTimeout':
      return make('NETWORK', `${operation} timed out: ${message}`);
    case 'DuplicateSSHPublicKey':
    case 'UnrecognizedPublicKeyEncoding':
    case 'InvalidPublicKey':
      return make('INVALID_SSH_KEY', `${operation}: ${message}`);
    case 'ValidationError':
    case 'InvalidInput':
    case 'MalformedPolicyDocument':
      return make('INVALID_ARGUMENT', `${operation}: ${message}`);
    case 'EntityAlreadyExists':
      return make('AWS_ERROR', `${operation}: ${message}`);
    default:
      break;
  }
  if (/Region is missing/i.test(message)) {
    return make('NO_REGION', 'no AWS region set; set AWS_REGION or pass --region');
  }
  if (/Could not load credentials|credential/i.test(message) && !err.$metadata) {
    return make(
      'NO_CREDENTIALS',
      'no AWS credentials found; configure them (AWS_PROFILE, aws configure, or an instance role)',
    );
  }
  const sysCode = String(err.code ?? '');
  if (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|ECONNABORTED)$/.test(
      sysCode,
    ) ||
    /socket hang up/i.test(message)
  ) {
    return make('NETWORK', `${operation} could not reach AWS: ${sysCode || message}`);
  }
  if (name === 'AbortError') return new DeadlineError(`${operation} was cut off by the deadline`, { cause: error });
  return make('AWS_ERROR', `${operation} failed: ${rawName ? `${rawName}: ` : ''}${message}`);
}

const IAM_ACTIONS: Record<string, string> = {
  GetCallerIdentity: 'sts:GetCallerIdentity',
  AssumeRole: 'sts:AssumeRole',
};
function permissionFor(operation: string): string {
  return IAM_ACTIONS[operation] ?? `iam:${operation}`;
}

/** What a NoSuchEntity means in a call about one IAM user or one of its keys. */
export interface MissingEntity {
  code: 'NO_SUCH_USER' | 'NO_SUCH_KEY';
  message: string;
}

export interface AwsCallOptions {
  /** The user or key a NoSuchEntity names here, instead of a bare entity. */
  missing?: MissingEntity;
  /** The mapping to use (default toAwsError); a caller may add its own cases in front of it. */
  classify?: (error: unknown, operation: string) => KeymakerError;
}

/** Runs one SDK call and maps its failure: the one wrapper every IAM/STS call in keymaker goes through. */
export async function awsCall<T>(operation: string, call: () => Promise<T>, options: AwsCallOptions = {}): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const mapped = (options.classify ?? toAwsError)(error, operation);
    if (options.missing && mapped.code === 'NO_SUCH_ENTITY') {
      throw new AwsError(options.missing.code, options.missing.message, {
        cause: mapped,
        operation,
        awsCode: mapped instanceof AwsError ? mapped.awsCode : undefined,
      });
    }
    throw mapped;
  }
}

/** An answer we cannot trust is an error, never something to act on. */
export function unexpectedAnswer(operation: string, what: string): AwsError {
  return new AwsError('AWS_ERROR', `${operation} returned an unexpected answer (${what})`, { operation });
}

export function requireString(value: unknown, operation: string, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw unexpectedAnswer(operation, `${field} missing`);
  return value;
}

/** A list of records; anything else (or a null inside) is an unexpected answer. */
export function requireArray(value: unknown, operation: string, field: string): Record<string, unknown>[] {
  if (!Array.isArray(value)) throw unexpectedAnswer(operation, `${field} is not a list`);
  for (const item of value) {
    if (!item || typeof item !== 'object') throw unexpectedAnswer(operation, `${field} holds a non-object`);
  }
  return value as Record<string, unknown>[];
}

export interface Page<T> {
  items: T[];
  isTruncated?: boolean;
  marker?: string;
}

/** Page limit: 1000 pages of 100+ items is far beyond IAM's own quotas. */
const MAX_PAGES = 1000;

/**
 * Reads every page of an IAM Marker/IsTruncated listing. A truncated page
 * without a new marker, or a marker that repeats, is an error: a partial list
 * must never pass for a whole one.
 */
export async function collectPages<T>(
  operation: string,
  fetchPage: (marker?: string) => Promise<Page<T>>,
): Promise<T[]> {
  const all: T[] = [];
  const seen = new Set<string>();
  let marker: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await fetchPage(marker);
    all.push(...result.items);
    if (!result.isTruncated) return all;
    if (!result.marker || seen.has(result.marker))
      throw unexpectedAnswer(operation, 'truncated page without a new marker');
    seen.add(result.marker);
    marker = result.marker;
  }
  throw unexpectedAnswer(operation, `more than ${MAX_PAGES} pages`);
}
