/*
 * What an AWS SDK v3 failure means to keymaker, as data (aws-sdk-js-v3's
 * service-error-classification in keymaker's codes): the first row that matches
 * a failure gives its code and its one line. toAwsError reads it; awsCall uses
 * toAwsError. Rows that name errors come first; the rest match what is left by
 * its message or Node's system error code.
 */
import type { AwsErrorCode } from './errors';

/** What a row sees of one failure. */
export interface AwsFailure {
  /** The SDK's error name (or `Code`) as thrown, e.g. "NoSuchEntityException". */
  rawName: string;
  /** rawName without its "Exception" suffix: what rows match. */
  name: string;
  /** The first line of its message. */
  message: string;
  /** Node's system error code (ECONNREFUSED...), when the request never got an answer. */
  systemCode: string;
  /** Whether AWS answered at all (the SDK's $metadata). */
  answered: boolean;
  operation: string;
}

export interface AwsErrorClass {
  code: AwsErrorCode;
  /** Matches these error names (without "Exception"). */
  names?: readonly string[];
  /** Matches these Node system error codes. */
  systemCodes?: readonly string[];
  /** Matches a message; with `unanswered`, only when AWS gave no answer. */
  message?: RegExp;
  unanswered?: boolean;
  /** The one line a person sees. */
  text(failure: AwsFailure): string;
}

const NO_CREDENTIALS_TEXT =
  'no AWS credentials found; configure them (AWS_PROFILE, aws configure, or an instance role)';
const plain = (f: AwsFailure) => `${f.operation}: ${f.message}`;
const unreachable = (f: AwsFailure) => `${f.operation} could not reach AWS: ${f.systemCode || f.message}`;

const IAM_ACTIONS: Record<string, string> = {
  GetCallerIdentity: 'sts:GetCallerIdentity',
  AssumeRole: 'sts:AssumeRole',
};
function permissionFor(operation: string): string {
  return IAM_ACTIONS[operation] ?? `iam:${operation}`;
}

/** In order: the first match wins. Anything unmatched is AWS_ERROR (or, an abort, the deadline). */
export const AWS_ERROR_CLASSES: readonly AwsErrorClass[] = [
  { code: 'NO_SUCH_ENTITY', names: ['NoSuchEntity'], text: plain },
  { code: 'LIMIT_EXCEEDED', names: ['LimitExceeded'], text: plain },
  {
    code: 'ACCESS_DENIED',
    names: ['AccessDenied', 'UnauthorizedOperation', 'AccessDeniedError'],
    text: (f) => `${f.operation} was denied: ${f.message}; grant the permission ${permissionFor(f.operation)}`,
  },
  {
    code: 'THROTTLED',
    names: ['Throttling', 'RequestLimitExceeded', 'TooManyRequests', 'SlowDown'],
    text: (f) => `${f.operation} was throttled by AWS; try again later`,
  },
  {
    code: 'NO_CREDENTIALS',
    names: ['InvalidClientTokenId', 'ExpiredToken', 'SignatureDoesNotMatch', 'UnrecognizedClient'],
    text: (f) => `AWS credentials were refused (${f.rawName}); refresh or fix your credentials`,
  },
  { code: 'NO_CREDENTIALS', names: ['CredentialsProviderError'], text: () => NO_CREDENTIALS_TEXT },
  {
    code: 'NETWORK',
    names: ['TimeoutError', 'RequestTimeout'],
    text: (f) => `${f.operation} timed out: ${f.message}`,
  },
  {
    code: 'INVALID_SSH_KEY',
    names: ['DuplicateSSHPublicKey', 'UnrecognizedPublicKeyEncoding', 'InvalidPublicKey'],
    text: plain,
  },
  { code: 'INVALID_ARGUMENT', names: ['ValidationError', 'InvalidInput', 'MalformedPolicyDocument'], text: plain },
  { code: 'AWS_ERROR', names: ['EntityAlreadyExists'], text: plain },
  {
    code: 'NO_REGION',
    message: /Region is missing/i,
    text: () => 'no AWS region set; set AWS_REGION or pass --region',
  },
  {
    code: 'NO_CREDENTIALS',
    message: /Could not load credentials|credential/i,
    unanswered: true,
    text: () => NO_CREDENTIALS_TEXT,
  },
  {
    code: 'NETWORK',
    systemCodes: [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EPIPE',
      'ECONNABORTED',
    ],
    text: unreachable,
  },
  { code: 'NETWORK', message: /socket hang up/i, text: unreachable },
];

/** The first row of AWS_ERROR_CLASSES that matches, if any. */
export function classifyAwsFailure(
  failure: AwsFailure,
  classes: readonly AwsErrorClass[] = AWS_ERROR_CLASSES,
): AwsErrorClass | undefined {
  return classes.find(
    (row) =>
      (row.names?.includes(failure.name) ?? false) ||
      (row.systemCodes?.includes(failure.systemCode) ?? false) ||
      (row.message !== undefined && row.message.test(failure.message) && !(row.unanswered && failure.answered)),
  );
}
