/**
 * One error hierarchy for every Keymaker package. Each error carries a stable
 * `code`; `exitCodeFor` is the single place that maps codes to process exit codes.
 */

export const EXIT_CODES = {
  INTERNAL: 1,
  USAGE: 2,
  INVALID_ARGUMENT: 3,
  INVALID_USERNAME: 4,
  INVALID_SSH_KEY: 5,
  INVALID_ROLE_CONFIG: 6,
  FILE_NOT_FOUND: 7,
  NO_SUCH_USER: 10,
  NO_SUCH_KEY: 11,
  NO_SUCH_ENTITY: 12,
  KEY_QUOTA_EXCEEDED: 13,
  ACCESS_DENIED: 14,
  THROTTLED: 15,
  NO_CREDENTIALS: 16,
  NO_REGION: 17,
  ROLE_CREDENTIALS: 18,
  NETWORK: 19,
  AWS_ERROR: 20,
  DEADLINE_EXCEEDED: 21,
  LIMIT_EXCEEDED: 22,
  NO_INSTANCE_ROLE: 23,
  UNKNOWN_PROFILE: 24,
  NOT_MANAGED: 30,
  NOT_IN_REQUIRED_GROUP: 31,
  NOT_ROOT: 40,
  UNSAFE_PATH: 41,
  SSHD_CONFIG_INVALID: 42,
  SYSTEM_COMMAND_FAILED: 43,
  UID_CONFLICT: 44,
  LOCKED: 45,
  EXISTING_AUTHORIZED_KEYS_COMMAND: 46,
  GROUP_NOT_MANAGED: 47,
  UNSUPPORTED_HOST: 48,
  WEAKER_AUTHENTICATION: 49,
  STATUS_PROBLEMS: 50,
  AGENT_MODE_UNAVAILABLE: 51,
  EFS_HOME_REFUSED: 55,
  SYNC_PARTIAL: 56,
} as const;

export type ErrorCode = keyof typeof EXIT_CODES;

export interface KeymakerErrorOptions {
  cause?: unknown;
  /** Extra structured facts for logs and --json output. */
  details?: Record<string, unknown>;
}

/**
 * The brand every KeymakerError carries, shared by every copy of @keymaker/core loaded in one process
 * (`Symbol.for` is process-global): an embedder with two copies (one of its own, one bundled in a
 * dependency) still gets `isKeymakerError`, `exitCodeFor` and `instanceof KeymakerError` right.
 */
export const KEYMAKER_ERROR_BRAND: unique symbol = Symbol.for('keymaker.error') as never;

function isBranded(value: unknown): value is KeymakerError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<PropertyKey, unknown>)[KEYMAKER_ERROR_BRAND] === true &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}

/** `C`: the codes this class accepts (a subclass narrows it to its own). */
export class KeymakerError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly details: Record<string, unknown>;
  declare readonly [KEYMAKER_ERROR_BRAND]: true;

  /** `instanceof KeymakerError` holds for a KeymakerError from any copy of this package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === KeymakerError) return isBranded(value);
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  constructor(code: C, message: string, options: KeymakerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}
Object.defineProperty(KeymakerError.prototype, KEYMAKER_ERROR_BRAND, { value: true });

/*
 * Each subclass accepts only its own codes (the lists below), so a code is filed once: a caller
 * picks the class by what went wrong, and the compiler refuses a code from another class.
 * errorForCode files a code that is only known at run time (a remembered refusal).
 */

/** InputError's codes: what a person or a script handed over (arguments, names, files, keys). */
export const INPUT_ERROR_CODES = [
  'USAGE',
  'INVALID_ARGUMENT',
  'INVALID_USERNAME',
  'INVALID_SSH_KEY',
  'FILE_NOT_FOUND',
] as const satisfies readonly ErrorCode[];
export type InputErrorCode = (typeof INPUT_ERROR_CODES)[number];

/**
 * AwsError's codes: what IAM or STS answered (or a guard's cached or local stand-in for that
 * answer), or why no call could be made (credentials, region, profile, role).
 */
export const AWS_ERROR_CODES = [
  'NO_SUCH_USER',
  'NO_SUCH_KEY',
  'NO_SUCH_ENTITY',
  'KEY_QUOTA_EXCEEDED',
  'LIMIT_EXCEEDED',
  'ACCESS_DENIED',
  'THROTTLED',
  'NO_CREDENTIALS',
  'NO_REGION',
  'ROLE_CREDENTIALS',
  'NETWORK',
  'AWS_ERROR',
  'NO_INSTANCE_ROLE',
  'UNKNOWN_PROFILE',
] as const satisfies readonly ErrorCode[];
/** AWS's refusal of what we sent keeps the input code, and stays an AwsError so its awsCode is kept. */
export type AwsRejectedInputCode = 'INVALID_ARGUMENT' | 'INVALID_SSH_KEY';
export type AwsErrorCode = (typeof AWS_ERROR_CODES)[number] | AwsRejectedInputCode;

/** AccessRefusedError's codes: a login refused on purpose. */
export const REFUSAL_CODES = ['NOT_MANAGED', 'NOT_IN_REQUIRED_GROUP'] as const satisfies readonly ErrorCode[];
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** HostError's codes: the machine (files, sshd, PAM, useradd, locks, the install). */
export const HOST_ERROR_CODES = [
  'NOT_ROOT',
  'UNSAFE_PATH',
  'SSHD_CONFIG_INVALID',
  'SYSTEM_COMMAND_FAILED',
  'UID_CONFLICT',
  'LOCKED',
  'EXISTING_AUTHORIZED_KEYS_COMMAND',
  'GROUP_NOT_MANAGED',
  'UNSUPPORTED_HOST',
  'WEAKER_AUTHENTICATION',
  'STATUS_PROBLEMS',
  'AGENT_MODE_UNAVAILABLE',
  'EFS_HOME_REFUSED',
  'SYNC_PARTIAL',
] as const satisfies readonly ErrorCode[];
export type HostErrorCode = (typeof HOST_ERROR_CODES)[number];

/** Bad input from a person or a script: arguments, names, files, keys. */
export class InputError extends KeymakerError<InputErrorCode> {}

/** A role description whose keymaker tokens cannot be trusted. */
export class RoleConfigError extends KeymakerError<'INVALID_ROLE_CONFIG'> {
  constructor(message: string, options: KeymakerErrorOptions = {}) {
    super('INVALID_ROLE_CONFIG', message, options);
  }
}

/** An AWS call failed, or could not be made; `awsCode` is the service's error code when there was one. */
export class AwsError extends KeymakerError<AwsErrorCode> {
  readonly awsCode?: string;
  readonly operation?: string;
  constructor(
    code: AwsErrorCode,
    message: string,
    options: KeymakerErrorOptions & { awsCode?: string; operation?: string } = {},
  ) {
    super(code, message, options);
    this.awsCode = options.awsCode;
    this.operation = options.operation;
  }
}

/** A login that is refused on purpose (not managed, not in the required group). */
export class AccessRefusedError extends KeymakerError<RefusalCode> {}

/** Something on the host: files, sshd, PAM, useradd, locks. */
export class HostError extends KeymakerError<HostErrorCode> {}

export class DeadlineError extends KeymakerError<'DEADLINE_EXCEEDED'> {
  constructor(message: string, options: KeymakerErrorOptions = {}) {
    super('DEADLINE_EXCEEDED', message, options);
  }
}

function isOneOf<T extends string>(codes: readonly T[], code: string): code is T {
  return (codes as readonly string[]).includes(code);
}

/** The error of the class that owns `code`, for a code known only at run time. */
export function errorForCode(code: ErrorCode, message: string, options: KeymakerErrorOptions = {}): KeymakerError {
  if (isOneOf(INPUT_ERROR_CODES, code)) return new InputError(code, message, options);
  if (isOneOf(AWS_ERROR_CODES, code)) return new AwsError(code, message, options);
  if (isOneOf(REFUSAL_CODES, code)) return new AccessRefusedError(code, message, options);
  if (isOneOf(HOST_ERROR_CODES, code)) return new HostError(code, message, options);
  if (code === 'INVALID_ROLE_CONFIG') return new RoleConfigError(message, options);
  if (code === 'DEADLINE_EXCEEDED') return new DeadlineError(message, options);
  return new KeymakerError(code, message, options);
}

export function isKeymakerError(error: unknown, code?: ErrorCode): error is KeymakerError {
  return isBranded(error) && (code === undefined || error.code === code);
}

export function exitCodeFor(error: unknown): number {
  if (!isBranded(error)) return EXIT_CODES.INTERNAL;
  // Another copy (maybe another version) may know a code this one does not: its own mapping then.
  if (Object.hasOwn(EXIT_CODES, error.code)) return EXIT_CODES[error.code];
  const own = (error as { exitCode?: unknown }).exitCode;
  return Number.isInteger(own) && (own as number) > 0 && (own as number) < 256 ? (own as number) : EXIT_CODES.INTERNAL;
}

/** The one line a person sees: never a stack trace. */
export function formatError(error: unknown): string {
  return `keymaker: ${errorMessage(error)}`;
}

/** formatError's line without its "keymaker: " prefix: for syslog lines and JSON messages, which say who speaks. */
export function errorMessage(error: unknown): string {
  if (error instanceof KeymakerError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return `unexpected error: ${firstLine(message)} (run with --debug for details)`;
}

/** What every command boundary tells about a failure: the stable code, the exit code and the text. */
export interface ErrorReport {
  /** The error's code; INTERNAL for anything that is not a KeymakerError. */
  code: string;
  exitCode: number;
  /** formatError's line (for stderr). */
  line: string;
  /** The same without the prefix (for syslog and --json). */
  message: string;
}

/** The one mapping of an error to what a boundary prints, logs and exits with. */
export function describeError(error: unknown): ErrorReport {
  const message = errorMessage(error);
  return {
    code: isKeymakerError(error) ? error.code : 'INTERNAL',
    exitCode: exitCodeFor(error),
    line: `keymaker: ${message}`,
    message,
  };
}

/**
 * What a failed command prints beyond its one error line, in order: more stderr lines (sync_groups
 * says what was left unchanged) and data for stdout (a --json answer). The command attaches it to
 * the error it throws; the command boundary prints it after the line.
 */
export interface FailureOutput {
  extraLines?: string[];
  stdout?: string;
}

/** `error` with `output` attached (in a KeymakerError's details; on any other Error, a details of its own). */
export function withFailureOutput(error: unknown, output: FailureOutput): unknown {
  if (isBranded(error)) Object.assign(error.details, output);
  else if (error instanceof Error) Object.assign(error, { details: output });
  return error;
}

/** The output withFailureOutput attached to `error` (none: nothing). */
export function failureOutput(error: unknown): FailureOutput {
  const details = (error as { details?: unknown } | undefined)?.details;
  if (typeof details !== 'object' || details === null) return {};
  const { extraLines, stdout } = details as Record<string, unknown>;
  return {
    ...(Array.isArray(extraLines) && extraLines.every((line) => typeof line === 'string') ? { extraLines } : {}),
    ...(typeof stdout === 'string' ? { stdout } : {}),
  };
}

/** --debug's extra lines: the stack, and the cause's stack when there is one. */
export function debugLines(error: unknown): string[] {
  const lines = [error instanceof Error ? (error.stack ?? String(error)) : String(error)];
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && cause.stack) lines.push(`caused by: ${cause.stack}`);
  return lines;
}

export function firstLine(text: string): string {
  const line = text.split(/\r?\n/, 1)[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
