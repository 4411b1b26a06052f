import { classifyAwsFailure, type AwsFailure } from './aws-error-classes';
import { AwsError, DeadlineError, firstLine, isKeymakerError, type KeymakerError } from './errors';

/** Maps what an AWS SDK v3 call threw to a typed KeymakerError (idempotent), by AWS_ERROR_CLASSES. */
export function toAwsError(error: unknown, operation: string): KeymakerError {
  if (isKeymakerError(error)) return error;
  const err = (error ?? {}) as { name?: string; code?: string; message?: string; Code?: string; $metadata?: unknown };
  const rawName = String(err.Code ?? err.name ?? '');
  const failure: AwsFailure = {
    rawName,
    name: rawName.replace(/Exception$/, ''),
    message: firstLine(String(err.message ?? error)),
    systemCode: String(err.code ?? ''),
    answered: Boolean(err.$metadata),
    operation,
  };
  const row = classifyAwsFailure(failure);
  if (!row && failure.name === 'AbortError')
    return new DeadlineError(`${operation} was cut off by the deadline`, { cause: error });
  const text = row ? row.text(failure) : `${operation} failed: ${rawName ? `${rawName}: ` : ''}${failure.message}`;
  return new AwsError(row?.code ?? 'AWS_ERROR', text, { cause: error, awsCode: rawName || undefined, operation });
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
