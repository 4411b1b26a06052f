/*
 * `keymaker install`'s flags as InstallRunOptions: the defaults, the checks of each value, and
 * what the machine fills in (the region: core's explicitRegion, then the instance's metadata; the
 * endpoints: the SDK's AWS_ENDPOINT_URL_* variables). The CLI and the install fault test both
 * build their install through it, so the test runs the install the CLI runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { efsHomeProblem, explicitRegion, InputError } from '@keymaker/core';
import { regionFromInstanceMetadata } from '../config/instance-region';
import { DEFAULT_PATHS } from '../system/paths';
import type { InstallRunOptions } from './apply';

/** The flags as the command line gives them; unset ones take the CLI's defaults. */
export interface InstallFlags extends Partial<
  Pick<
    InstallRunOptions,
    | 'user'
    | 'force'
    | 'schedule'
    | 'mode'
    | 'agentRefreshSeconds'
    | 'loginShell'
    | 'region'
    | 'iamEndpoint'
    | 'stsEndpoint'
    | 'deadlineMs'
    | 'profile'
    | 'efsHome'
    | 'sshd'
    | 'reload'
    | 'sshdPidFile'
    | 'dryRun'
  >
> {
  /** The Node binary the hooks run (default: this one). */
  node?: string;
  /** --sync-interval, minutes. */
  syncInterval?: number;
  /** The host bundle to install (the CLI's default: keymaker-host.js next to it). */
  bundle: string;
  /** The AWS credentials file to copy. */
  credentialsFile?: string;
}

/** What the machine answers (tests pass their own). */
export interface InstallMachine {
  env?: NodeJS.ProcessEnv;
  instanceRegion?: () => Promise<string | undefined>;
}

function positiveInteger(value: number | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value))
    throw new InputError('INVALID_ARGUMENT', `${flag} must be a whole number, got ${value}`);
  return value;
}

/** --efs-home, checked like the role token (one line naming the flag and the form); "role" is read after install. */
function efsHomeOption(value: string | undefined): string | undefined {
  if (value === undefined || value === 'role') return undefined;
  const problem = efsHomeProblem(value);
  if (problem) throw new InputError('INVALID_ARGUMENT', `--efs-home ${JSON.stringify(value)}: ${problem}`);
  return value;
}

export async function installOptionsFromFlags(
  flags: InstallFlags,
  machine: InstallMachine = {},
): Promise<InstallRunOptions> {
  const env = machine.env ?? process.env;
  const nodeArg = flags.node ?? process.execPath;
  if (!fs.existsSync(nodeArg)) throw new InputError('FILE_NOT_FOUND', `--node ${nodeArg} not found`);
  const region =
    explicitRegion(flags.region, env)?.region ??
    (await (machine.instanceRegion ?? (() => regionFromInstanceMetadata(env)))());
  return {
    paths: DEFAULT_PATHS,
    user: flags.user ?? 'keymaker',
    nodePath: fs.realpathSync(path.resolve(nodeArg)),
    force: Boolean(flags.force),
    schedule: flags.schedule ?? 'auto',
    mode: flags.mode,
    syncIntervalMinutes: positiveInteger(flags.syncInterval, '--sync-interval'),
    agentRefreshSeconds: positiveInteger(flags.agentRefreshSeconds, '--agent-refresh-seconds'),
    loginShell: flags.loginShell,
    region,
    iamEndpoint: flags.iamEndpoint ?? (env.AWS_ENDPOINT_URL_IAM || undefined),
    stsEndpoint: flags.stsEndpoint ?? (env.AWS_ENDPOINT_URL_STS || undefined),
    deadlineMs: positiveInteger(flags.deadlineMs, '--deadline-ms'),
    profile: flags.profile,
    efsHome: efsHomeOption(flags.efsHome),
    bundleSource: path.resolve(flags.bundle),
    extraCaCerts: env.NODE_EXTRA_CA_CERTS?.startsWith('/') ? env.NODE_EXTRA_CA_CERTS : undefined,
    credentialsSource: flags.credentialsFile ? path.resolve(flags.credentialsFile) : undefined,
    sshd: flags.sshd ?? '/usr/sbin/sshd',
    reload: flags.reload ?? 'auto',
    sshdPidFile: flags.sshdPidFile,
    dryRun: Boolean(flags.dryRun),
  };
}
