import {
  createIamClient,
  createStsClient,
  currentIamUserName,
  resolveDirectory,
  type AwsClientOptions,
  type Resolution,
} from '@keymaker/core';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';

/** What every command gets: global options, AWS clients built lazily, and output sinks. */
export interface GlobalOptions {
  region?: string;
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
  info(line: string): void;
}

export function createContext(options: GlobalOptions): CommandContext {
  const aws: AwsClientOptions = { region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION };
  let iam: IAMClient | undefined;
  let sts: STSClient | undefined;
  const context: CommandContext = {
    options,
    aws,
    iam: () => (iam ??= createIamClient(aws)),
    sts: () => (sts ??= createStsClient(aws)),
    resolve: () =>
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
