import type { IAMClient } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import { createIamClient, createStsClient, describeError, type Deadline } from '@keymaker/core';
import { configure, type ApplyOptions } from './apply';
import {
  assertAwsProfileExists,
  parseConfigureOptions,
  type ProfileLookupEnv,
  type RawConfigureOptions,
} from './options';
import { formatPlan, planToJson } from './plan';
import type { ConfigureClients } from './state';

/** Builds SDK clients; `profile` undefined means the default credential chain (AWS_PROFILE, env, SSO, ...). */
export interface ClientFactory {
  iamClientFor(profile?: string): IAMClient;
  stsClientFor(profile?: string): STSClient;
}

export interface ClientFactoryConfig {
  region?: string;
  /** The profile of the current-account clients (--profile; else AWS_PROFILE / the default chain). */
  profile?: string;
  /** For tests and emulators (e.g. moto). */
  endpoint?: string;
  maxAttempts?: number;
  /** Overall deadline for every call (--timeout). */
  deadline?: Deadline;
}

/**
 * The ordinary factory: a named profile goes to the SDK's `profile` option,
 * so it is read from ~/.aws/config and ~/.aws/credentials (or
 * AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE). The region defaults to the
 * environment, then the profile's; IAM itself is global.
 */
export function createClientFactory(config: ClientFactoryConfig = {}): ClientFactory {
  const options = (profile?: string) => ({
    region: config.region,
    iamEndpoint: config.endpoint,
    stsEndpoint: config.endpoint,
    maxAttempts: config.maxAttempts,
    deadline: config.deadline,
    // A stalled request fails and is retried within the overall deadline, instead of using all of it.
    requestTimeoutMs: config.deadline
      ? Math.max(1000, Math.min(30_000, Math.floor(config.deadline.ms / 3)))
      : undefined,
    profile: profile ?? config.profile,
  });
  return {
    iamClientFor: (profile) => createIamClient(options(profile)),
    stsClientFor: (profile) => createStsClient(options(profile)),
  };
}

export interface ConfigureCommandOptions extends RawConfigureOptions {
  dryRun?: boolean;
  json?: boolean;
}

export interface CommandResult {
  exitCode: number;
  /** Lines for stdout: the plan (text), or one JSON document with --json. */
  stdout: string[];
  /** Lines for stderr: the one-line error, if any. */
  stderr: string[];
}

export interface ConfigureCommandEnv {
  /** Where to look for --cross-account-profile (defaults: process.env and the home directory). */
  profileLookup?: ProfileLookupEnv;
  apply?: ApplyOptions;
}

function flag(raw: ConfigureCommandOptions, camel: string, kebab: string): boolean {
  return raw[camel] === true || raw[kebab] === true;
}

/**
 * `keymaker configure`, minus argument parsing: validates, reads IAM, plans,
 * applies (unless --dry-run) and returns what to print and the exit code.
 * Never throws for Keymaker errors; the CLI prints the lines and exits.
 */
export async function runConfigureCommand(
  raw: ConfigureCommandOptions,
  factory: ClientFactory,
  env: ConfigureCommandEnv = {},
): Promise<CommandResult> {
  const json = flag(raw, 'json', 'json');
  const dryRun = flag(raw, 'dryRun', 'dry-run');
  try {
    const options = parseConfigureOptions(raw);
    // Before any call: the SDK, given a missing profile, falls back to other credential sources.
    if (options.crossAccountProfile !== undefined)
      assertAwsProfileExists(options.crossAccountProfile, env.profileLookup);
    const clients: ConfigureClients = { iam: factory.iamClientFor(), sts: factory.stsClientFor() };
    if (options.crossAccountProfile !== undefined) {
      clients.crossAccount = {
        iam: factory.iamClientFor(options.crossAccountProfile),
        sts: factory.stsClientFor(options.crossAccountProfile),
      };
    }
    const result = await configure(clients, options, { ...env.apply, dryRun });
    const { plan } = result;
    if (json) {
      const doc = {
        ok: true,
        dryRun,
        changed: result.changed,
        nothingToChange: plan.steps.length === 0,
        applied: result.applied.length,
        plan: planToJson(plan),
      };
      return { exitCode: 0, stdout: [JSON.stringify(doc, null, 2)], stderr: [] };
    }
    const lines = formatPlan(plan, { dryRun });
    if (plan.steps.length > 0) {
      lines.push(
        dryRun
          ? 'dry run: no changes were made; run without --dry-run to apply'
          : `done: ${result.applied.length} change(s) applied`,
      );
    }
    return { exitCode: 0, stdout: lines, stderr: [] };
  } catch (error) {
    const report = describeError(error);
    if (json) {
      const doc = { ok: false, error: { code: report.code, exitCode: report.exitCode, message: report.message } };
      return { exitCode: report.exitCode, stdout: [JSON.stringify(doc, null, 2)], stderr: [report.line] };
    }
    return { exitCode: report.exitCode, stdout: [], stderr: [report.line] };
  }
}
