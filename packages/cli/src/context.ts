import {
  createDeadline,
  createIamClient,
  createStsClient,
  currentIamUserName,
  InputError,
  resolveDirectory,
  type AwsClientOptions,
  type Resolution,
} from '@keymaker/core';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import type { Argv, InferredOptionTypes } from 'yargs';
import type { CommandRegistry } from './help';

/** The options every command takes, as yargs defines them (main.ts registers them, global). */
export const GLOBAL_OPTIONS = {
  region: { type: 'string', global: true, describe: 'AWS region (default: AWS_REGION / your AWS config)' },
  profile: {
    type: 'string',
    global: true,
    describe: 'AWS profile from ~/.aws/config or ~/.aws/credentials (default: AWS_PROFILE)',
  },
  timeout: {
    type: 'string',
    requiresArg: true,
    global: true,
    describe: 'give up on AWS after this many SECONDS (default 30; connect timeout 5)',
  },
  json: { type: 'boolean', global: true, describe: 'machine-readable output on stdout' },
  debug: { type: 'boolean', global: true, describe: 'show stack traces and details on errors' },
} as const;

/** What yargs parses GLOBAL_OPTIONS into: where every command's builder starts. */
export type GlobalArgs = InferredOptionTypes<typeof GLOBAL_OPTIONS>;
/** The CLI as the command groups see it. */
export type Cli = Argv<GlobalArgs>;
/** What a command group registers its commands on (help.ts documents each). */
export type Commands = CommandRegistry<GlobalArgs>;

/** What every command gets: global options, AWS clients built lazily, and output sinks. */
export interface GlobalOptions {
  region?: string;
  /** AWS profile (else AWS_PROFILE); must exist in the shared config or credentials file. */
  profile?: string;
  /** Overall deadline in seconds for the command's AWS calls (default 30); validated by timeoutMs. */
  timeout?: string | number;
  debug?: boolean;
  json?: boolean;
}

export interface CommandContext {
  options: GlobalOptions;
  aws: AwsClientOptions;
  iam(): IAMClient;
  sts(): STSClient;
  /** The IAM directory this machine resolves users in (role config, ID-resolver account). */
  resolve(): Promise<Resolution>;
  /** --user, or the IAM user behind the current credentials. */
  userOrCurrent(user: string | undefined): Promise<string>;
  out(line: string): void;
  /** A function, not a method: handed on unbound (e.g. to selectPublicKey). */
  info: (line: string) => void;
}

export const DEFAULT_TIMEOUT_SECONDS = 30;
const MAX_TIMEOUT_SECONDS = 3600;

/** --timeout SECONDS as milliseconds; anything but a number in (0, 3600] is a usage error. */
export function timeoutMs(value: unknown): number {
  if (value === undefined) return DEFAULT_TIMEOUT_SECONDS * 1000;
  // yargs gives a string, or an array of them for a repeated --timeout (String() of an array joins with commas).
  const text = (
    Array.isArray(value)
      ? value.join(',')
      : typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? String(value)
        : ''
  ).trim();
  const seconds = typeof value === 'number' ? value : /^\d+(\.\d+)?$|^\.\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `--timeout ${JSON.stringify(Array.isArray(value) ? value.join(' ') : text)}: give a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, e.g. --timeout 60`,
    );
  }
  return Math.round(seconds * 1000);
}

/**
 * The AWS options a command's flags give: region, profile and the overall
 * deadline (started now). `base` is what the machine says (the host config
 * on an instance); an explicit flag wins over it.
 */
export function awsOptionsFromFlags(options: GlobalOptions, base: AwsClientOptions = {}): AwsClientOptions {
  const aws: AwsClientOptions = { ...base, deadline: createDeadline(timeoutMs(options.timeout)) };
  if (options.region !== undefined) aws.region = options.region;
  if (options.profile !== undefined) aws.profile = options.profile;
  return aws;
}

/** Only what the flags say explicitly (for the host lookup, whose own deadline applies unless --timeout is given). */
export function explicitAwsFlags(options: GlobalOptions): AwsClientOptions {
  const aws: AwsClientOptions = {};
  if (options.region !== undefined) aws.region = options.region;
  if (options.profile !== undefined) aws.profile = options.profile;
  if (options.timeout !== undefined) aws.deadline = createDeadline(timeoutMs(options.timeout));
  return aws;
}

/**
 * `base`: client options from the machine (the host config on an instance);
 * `resolveWith`: how that machine resolves its directory (the hooks' way).
 */
export function createContext(
  options: GlobalOptions,
  base: AwsClientOptions = {},
  resolveWith?: (aws: AwsClientOptions) => Promise<Resolution>,
): CommandContext {
  // Region and profile rules (AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1) live in core's client factory.
  const aws = awsOptionsFromFlags(options, base);
  let iam: IAMClient | undefined;
  let sts: STSClient | undefined;
  const context: CommandContext = {
    options,
    aws,
    iam: () => (iam ??= createIamClient(aws)),
    sts: () => (sts ??= createStsClient(aws)),
    resolve: () =>
      resolveWith?.(aws) ??
      resolveDirectory({
        iam: context.iam(),
        sts: context.sts(),
        iamClientFor: (credentials) => createIamClient({ ...aws, credentials }),
      }),
    userOrCurrent: async (user) => user ?? (await currentIamUserName(context.sts())),
    out: (line) => process.stdout.write(`${line}\n`),
    info: (line) => process.stderr.write(`${line}\n`),
  };
  return context;
}
