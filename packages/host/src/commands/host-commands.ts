/*
 * The bodies of the commands sshd, PAM and the sync schedule run. They read the host config (never
 * the caller's environment, which sshd resets and pam_exec fills with PAM items), log decisions to
 * syslog, and return a HostCommandResult or throw. The lean host entry and the yargs CLI both call
 * these through the one command boundary (cli run.ts), which writes the outcome: a result's lines,
 * or a thrown error's one line (exitCodeFor's code) and the lines the command attached to it
 * (withFailureOutput). A command logs its own decision, failures included, before it returns or
 * throws; whoever made the syslog writer flushes it afterwards (flushHostCommandSyslog).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import {
  DeadlineError,
  describeError,
  EXIT_CODES,
  HostError,
  isKeymakerError,
  isValidLinuxName,
  withDeadline,
  withFailureOutput,
  type AwsClientOptions,
  type SshPublicKey,
} from '@keymaker/core';
import { createAccountForLogin, FIRST_LOGIN_MESSAGE, PAM_EXIT_CREATED, PAM_EXIT_EXISTS } from '../login/create-account';
import { DEFAULT_EFS_HOME_BASE, efsHomeBaseOf, hostReservedNames, type HostConfig } from '../config/host-config';
import { assertShareMounted, ensureEfsHome, type EfsHomeIo } from '../accounts/efs-home';
import { nodeEfsHomeIo } from '../accounts/efs-home-io';
import { realRuntimeSystem, withAbortSignal, type RuntimeSystem } from '../system/runtime-system';
import { GetentAccounts, ShadowUtilsAdmin, type LocalAccounts, type LocalAdmin } from '../accounts/local-accounts';
import { withLock } from '../system/lock';
import { runLookup } from '../login/keys-lookup';
import { ensureLookupStateDir, fileLookupGuard, LOOKUP_STATE_DIR } from '../login/lookup-guard';
import { DEFAULT_PATHS, type HostPaths } from '../system/paths';
import {
  applyAwsEnvironment,
  awsOptionsFor,
  loadHostConfig,
  resolveWithConfig,
  type ResolveCacheOptions,
} from '../config/host-aws';
import { PreconnectAgent } from '../config/preconnect';
import { runGroupSync, type SyncReport } from '../accounts/group-sync';
import { createLoggerSyslog, type LoggerSyslogOptions, type Syslog } from '../system/syslog';
import { fileGuardStore, loginGuard, type LoginGuard } from '../login/pam-guard';
import { assertTrustedFile, runtimeTrustedFiles, type StatPath } from '../system/root-owned';
import { FileCacheStore } from '../system/cache-store';
import { nextKeyBodies, readKeyBodies, writeKeyBodies } from '../login/key-body-store';
import { planAdoption } from '../accounts/adopt';
import {
  MANAGED_USERS_GROUP,
  fileManagedAccounts,
  recordedAccount,
  fileManagedGroups,
  type ManagedAccountsStore,
  type ManagedGroupsStore,
} from '../accounts/managed-accounts';

export interface HostCommandEnv {
  paths?: Partial<HostPaths>;
  sys?: RuntimeSystem;
  accounts?: LocalAccounts;
  admin?: LocalAdmin;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  /** Effective uid (tests). */
  uid?: number;
  /** Used instead of logger(1) when given (tests). */
  syslog?: Syslog;
  /** lstat for the trusted-file check (tests). */
  statPath?: StatPath;
  /** The PAM hook's rate-limit and negative-cache state (default: the root-only file in /run/keymaker). */
  pamGuard?: LoginGuard;
  /** Client options laid over the host config's: the CLI's explicit --region/--profile/--timeout (the hooks pass none). */
  aws?: AwsClientOptions;
  /** keymaker's record of managed accounts (default: the file at paths.managedAccounts, trusted-file rules). */
  managed?: ManagedAccountsStore;
  /** The file operations of the EFS home hook (default: the real ones, setpriv for "as the user"). */
  efsHomeIo?: EfsHomeIo;
  /** The record of mirrored groups (default: the file at paths.managedGroups). */
  managedGroups?: ManagedGroupsStore;
  /** Starts the session hook's detached key-body worker (default: this entry again, `store_key_bodies USER`). */
  spawnKeyBodiesWorker?: (user: string) => void;
}

/**
 * What a host command hands the boundary: its exit code, lines for the person at the terminal (in
 * order; the boundary adds the newlines) and data for stdout after them. A refusal the command
 * makes on purpose (a hook's, with nothing on stderr) is a result; a failure is a thrown error.
 */
export interface HostCommandResult {
  exitCode: number;
  stderr?: string[];
  stdout?: string;
}

/**
 * The syslog writer of one host command run, made by its caller (the host entry), which flushes it
 * once the boundary has written the outcome: a failure's log line is in it by then. It writes to
 * the socket the host config names once the command has read it; a line logged before (the config's
 * own failure) goes to /dev/log.
 */
export interface HostCommandSyslog extends Syslog {
  /** Once the host config is read: its socket, and the echo to stderr for --debug. */
  configure(options: LoggerSyslogOptions): void;
  /** The final flush's bound, in ms from when it runs: 2 s, or what the command's deadline leaves. */
  flushWithinMs: () => number;
}

/** A HostCommandSyslog that writes through logger(1). */
export function hostCommandSyslog(): HostCommandSyslog {
  const writers: Array<ReturnType<typeof createLoggerSyslog>> = [];
  const configure = (options: LoggerSyslogOptions) => void writers.push(createLoggerSyslog(options));
  return {
    configure,
    log: (level, message) => {
      if (writers.length === 0) configure({});
      writers[writers.length - 1]!.log(level, message);
    },
    flush: async (timeoutMs) => void (await Promise.all(writers.map((writer) => writer.flush(timeoutMs)))),
    dropped: () => writers.reduce((sum, writer) => sum + writer.dropped(), 0),
    flushWithinMs: () => 2000,
  };
}

const isHostCommandSyslog = (syslog: Syslog): syslog is HostCommandSyslog => 'configure' in syslog;

/** Flushes within its bound; a line on stderr says how many messages could not be written. */
export async function flushHostCommandSyslog(syslog: Syslog, stderr: (text: string) => void): Promise<void> {
  await syslog.flush(isHostCommandSyslog(syslog) ? syslog.flushWithinMs() : 2000);
  const dropped = syslog.dropped?.() ?? 0;
  if (dropped > 0)
    stderr(`keymaker: ${dropped} syslog message(s) dropped: the syslog socket did not take them in time\n`);
}

interface Runtime {
  paths: HostPaths;
  sys: RuntimeSystem;
  cache: (mode: 'read' | 'write' | 'refresh') => ResolveCacheOptions;
  config: HostConfig;
  syslog: Syslog;
  accounts: LocalAccounts;
  admin: LocalAdmin;
  managed: ManagedAccountsStore;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Reads and checks the host config; a failure is logged, then thrown. */
async function prepare(env: HostCommandEnv, echo: boolean): Promise<Runtime> {
  const paths = { ...DEFAULT_PATHS, ...env.paths };
  const sys = env.sys ?? realRuntimeSystem;
  const stderr = env.stderr ?? ((text: string) => process.stderr.write(text));
  const syslog = env.syslog ?? hostCommandSyslog();
  let config: HostConfig;
  try {
    config = await loadHostConfig(sys, paths.configFile);
    // Whoever can change these files decides who logs in: root-owned, not group/world-writable, or nothing is read.
    for (const file of runtimeTrustedFiles(paths.configFile, config, config.authorizedKeysCommandUser)) {
      await assertTrustedFile(file, env.statPath);
    }
  } catch (error) {
    syslog.log('err', `cannot read the host config: ${describeError(error).message}`);
    throw error;
  }
  applyAwsEnvironment(config);
  if (isHostCommandSyslog(syslog))
    syslog.configure({ socket: config.syslogSocket, echo: echo ? (line) => stderr(`${line}\n`) : undefined });
  const cache = (mode: 'read' | 'write' | 'refresh'): ResolveCacheOptions => ({
    store: new FileCacheStore({ dir: paths.cacheDir, writable: mode !== 'read' }),
    ttlMs: config.cacheTtlSeconds * 1000,
    refresh: mode === 'refresh',
  });
  return {
    paths,
    sys,
    cache,
    config,
    syslog,
    accounts: env.accounts ?? new GetentAccounts(sys),
    admin: env.admin ?? shadowUtilsFor(sys, config),
    managed: env.managed ?? fileManagedAccounts(paths.managedAccounts, { stat: env.statPath }),
    stdout: env.stdout ?? ((text: string) => process.stdout.write(text)),
    stderr,
  };
}

/** Root commands create the lookup's per-name store for the lookup user (lookup-guard.ts); best effort. */
async function prepareLookupStore(rt: Runtime): Promise<void> {
  try {
    const user = rt.config.authorizedKeysCommandUser;
    if (await ensureLookupStateDir(() => rt.accounts.user(user)))
      rt.syslog.log('info', `created ${LOOKUP_STATE_DIR} for ${user} (the lookup's per-name cache and limit)`);
  } catch (error) {
    rt.syslog.log(
      'warning',
      `cannot create ${LOOKUP_STATE_DIR} (the lookup's per-name cache and limit; lookups stay live): ${(error as Error).message}`,
    );
  }
}

/**
 * Overall deadlines (issue 13, point 5): every host command runs under one (core's withDeadline),
 * whose signal aborts its in-flight AWS requests and kills the commands it started (getent,
 * useradd, groupadd, gpasswd: SIGTERM, then SIGKILL), so a hung request or command cannot keep a
 * run, and the sync lock, forever. After the deadline the command waits up to SETTLE_MS for that
 * work to end (children gone, lock released) before it reports and exits.
 */
export const SYNC_DEADLINE_MS = 120_000;
const SETTLE_MS = 2000;
/** Of the lookup's deadline, kept for handing its log lines to syslog (the rest is for the answer). */
export function lookupLogReserveMs(deadlineMs: number): number {
  return Math.min(500, Math.floor(deadlineMs / 5));
}

/** The local-account doors of this run, every command they run under `signal` (tests' fakes stay as given). */
function bindToDeadline(rt: Runtime, env: HostCommandEnv, signal: AbortSignal): void {
  const sys = withAbortSignal(rt.sys, signal);
  rt.accounts = env.accounts ?? new GetentAccounts(sys);
  rt.admin = env.admin ?? shadowUtilsFor(sys, rt.config);
}

/** shadow-utils as the host config wants new accounts: home on the EFS share when it has one, the login shell. */
export function shadowUtilsFor(sys: RuntimeSystem, config: HostConfig): ShadowUtilsAdmin {
  return new ShadowUtilsAdmin(sys, { efsHomeBase: efsHomeBaseOf(config), loginShell: config.loginShell });
}

/**
 * KEYMAKER_DEADLINE_MS: a deadline for manual runs and tests. Under sshd the
 * environment is reset, so there the host config's deadlineMs applies.
 */
function deadlineOverride(value: string | undefined): number | undefined {
  const ms = Number(value);
  return value && Number.isFinite(ms) && ms >= 100 && ms <= 60_000 ? ms : undefined;
}

/** get_authorized_keys USER [FINGERPRINT] [--debug] */
export async function getAuthorizedKeysCommand(args: string[], env: HostCommandEnv = {}): Promise<HostCommandResult> {
  const debug = args.includes('--debug');
  const positional = args.filter((arg) => arg !== '--debug');
  if (positional.length < 1 || positional.length > 2 || positional.some((arg) => arg.startsWith('-')))
    return { exitCode: EXIT_CODES.USAGE, stderr: ['usage: keymaker get_authorized_keys USER [FINGERPRINT]'] };
  const started = Date.now();
  const rt = await prepare(env, debug);
  const deadlineMs = deadlineOverride(process.env.KEYMAKER_DEADLINE_MS) ?? rt.config.deadlineMs;
  // The deadline includes logging: the answer gets all but a reserve, syslog what is left of it.
  const reserveMs = lookupLogReserveMs(deadlineMs);
  if (isHostCommandSyslog(rt.syslog))
    rt.syslog.flushWithinMs = () => Math.max(reserveMs, started + deadlineMs - Date.now());
  // Connections opened ahead of the requests (config/preconnect.ts); closed with the lookup.
  const httpsAgent = new PreconnectAgent();
  const aws = { ...awsOptionsFor(rt.config, deadlineMs - reserveMs), httpsAgent };
  try {
    return {
      exitCode: await runLookup(
        { user: positional[0]!, fingerprint: positional[1] },
        { write: rt.stdout },
        {
          deps: (deadline) => {
            bindToDeadline(rt, env, deadline.signal);
            const clients = { ...aws, deadline, ...env.aws };
            return {
              accounts: rt.accounts,
              resolve: () => resolveWithConfig(clients, rt.cache('read')),
              reservedNames: hostReservedNames(rt.config),
              guard: fileLookupGuard({ syslog: rt.syslog }),
              managedAccounts: () => rt.managed.readManaged(),
              keyBodies: (iamUserName) =>
                readKeyBodies(new FileCacheStore({ dir: rt.paths.cacheDir, writable: false }), iamUserName),
            };
          },
          syslog: rt.syslog,
          deadlineMs: Math.max(0, deadlineMs - reserveMs - (Date.now() - started)),
        },
      ),
    };
  } finally {
    httpsAgent.destroy();
  }
}

/** Compat account creation's home step when homes live on EFS (none otherwise). */
function efsHomeStep(config: HostConfig, env: HostCommandEnv) {
  const base = efsHomeBaseOf(config);
  if (!base) return undefined;
  const io = env.efsHomeIo ?? nodeEfsHomeIo();
  return {
    assertReady: () => assertShareMounted(io, base),
    make: (account: { name: string; uid: number; gid: number }) => {
      const verdict = ensureEfsHome(io, { ...account, home: `${base}/${account.name}` }, { base });
      return verdict.kind === 'created'
        ? `${base}/${account.name} created by ${verdict.by}${verdict.skeletonProblem ? ` (skeleton: ${verdict.skeletonProblem})` : ''}`
        : `${base}/${account.name} ${verdict.kind}`;
    },
  };
}

/**
 * pam_efs_home: pam_exec in the session stage (`required`) when homes live on EFS (issue 15). For a user whose
 * home is directly below the share's base it checks the share is mounted and the home is hers, or makes it
 * (accounts/efs-home.ts); a non-zero exit refuses the session. Every other user (local accounts) passes untouched.
 */
export async function pamEfsHomeCommand(
  pamEnv: NodeJS.ProcessEnv,
  env: HostCommandEnv = {},
): Promise<HostCommandResult> {
  if (pamEnv.PAM_TYPE !== undefined && pamEnv.PAM_TYPE !== 'open_session') return { exitCode: 0 };
  const user = pamEnv.PAM_USER ?? '';
  let rt: Runtime;
  try {
    rt = await prepare(env, false);
  } catch (error) {
    // No host config to read (prepare logged why): refuse only a home on the default share base, so a broken
    // config never locks local accounts (root's included) out of their sessions; the rest pass, told why.
    const entry = isValidLinuxName(user)
      ? await (env.accounts ?? new GetentAccounts(env.sys ?? realRuntimeSystem)).user(user).catch(() => undefined)
      : undefined;
    if (entry && path.posix.dirname(entry.home) === DEFAULT_EFS_HOME_BASE) throw error;
    return { exitCode: 0, stderr: [describeError(error).line] };
  }
  const who = `user=${JSON.stringify(user)} rhost=${JSON.stringify(pamEnv.PAM_RHOST ?? '-')}`;
  try {
    const base = efsHomeBaseOf(rt.config);
    if (!base) return { exitCode: 0 };
    if ((env.uid ?? process.getuid?.()) !== 0) throw new HostError('NOT_ROOT', 'pam_efs_home must run as root');
    const entry = isValidLinuxName(user) ? await rt.accounts.user(user) : undefined;
    if (!entry) return { exitCode: 0 }; // not an account: PAM's other modules decide, nothing here to make
    const verdict = ensureEfsHome(env.efsHomeIo ?? nodeEfsHomeIo(), entry, { base });
    if (verdict.kind === 'created')
      rt.syslog.log(
        'notice',
        `efs_home ${who} decision=created home=${entry.home} uid=${entry.uid} by=${verdict.by}${verdict.skeletonProblem ? ` skeleton_problem=${JSON.stringify(verdict.skeletonProblem)}` : ''}`,
      );
    return { exitCode: 0 };
  } catch (error) {
    // A refusal: PAM shows the client nothing, syslog says why.
    const report = describeError(error);
    rt.syslog.log(
      'warning',
      `efs_home ${who} decision=refused reason=${isKeymakerError(error) ? error.code : 'INTERNAL'}: ${report.message}`,
    );
    return { exitCode: report.exitCode };
  }
}

/**
 * pam_create_account: run by pam_exec (auth stage, as root) with PAM_USER,
 * PAM_RHOST, PAM_TYPE in the environment. Exit codes: 75 account created
 * (the connection still fails: connect again), 77 the account exists, other
 * codes: refused or failed (exitCodeFor). Never 0 in the auth stage: the
 * hook must not be what lets a login through.
 */
export async function pamCreateAccountCommand(
  pamEnv: NodeJS.ProcessEnv,
  env: HostCommandEnv = {},
): Promise<HostCommandResult> {
  const type = pamEnv.PAM_TYPE;
  if (type === 'open_session') return startKeyBodiesWorker(pamEnv, env);
  if (type !== undefined && type !== 'auth') return { exitCode: 0 }; // configured in another stage: nothing to do
  const user = pamEnv.PAM_USER ?? '';
  const rhost = pamEnv.PAM_RHOST ?? '-';
  // The same text for every name and outcome, before any work (see FIRST_LOGIN_MESSAGE): the
  // client must not learn whether an IAM user exists. Only timing differs (an IAM round trip for a
  // name that gets asked, none for a remembered, rate-limited or existing one).
  (env.stdout ?? ((text: string) => process.stdout.write(text)))(`${FIRST_LOGIN_MESSAGE}\n`);
  const rt = await prepare(env, false);
  const who = `user=${JSON.stringify(user)} rhost=${JSON.stringify(rhost)}`;
  try {
    if ((env.uid ?? process.getuid?.()) !== 0) {
      throw new HostError('NOT_ROOT', 'pam_create_account must run as root (from pam_exec)');
    }
    await prepareLookupStore(rt);
    // Account creation gets the lookup's deadline for IAM plus room for useradd.
    const limitMs = rt.config.deadlineMs + 10_000;
    const outcome = await withDeadline(
      limitMs,
      async (signal, deadline) => {
        bindToDeadline(rt, env, signal);
        const aws = { ...awsOptionsFor(rt.config, rt.config.deadlineMs), deadline };
        return createAccountForLogin(
          user,
          {
            accounts: rt.accounts,
            admin: rt.admin,
            resolve: () => resolveWithConfig(aws, rt.cache('write')),
            lock: (body) => withLock(rt.paths.syncLock, { waitMs: 5000 }, body),
            guard: env.pamGuard ?? loginGuard(fileGuardStore()),
            managed: rt.managed,
            efsHome: efsHomeStep(rt.config, env),
          },
          {
            allowedExistingGroups: rt.config.allowedExistingGroups,
            reservedNames: hostReservedNames(rt.config),
            source: pamEnv.PAM_RHOST,
          },
        );
      },
      () => new DeadlineError(`account creation did not finish within ${limitMs} ms`),
      { settleMs: SETTLE_MS },
    );
    if (outcome.kind === 'exists') {
      // The normal case for every login of an existing user: not worth a log line each time.
      return { exitCode: PAM_EXIT_EXISTS };
    }
    rt.syslog.log(
      'notice',
      `create_account ${who} decision=created uid=${outcome.uid} iam_user=${outcome.iamUserName} groups=${outcome.groups.join(',') || '-'}${outcome.home ? ` home=${JSON.stringify(outcome.home)}` : ''}`,
    );
    for (const skipped of outcome.skippedGroups)
      rt.syslog.log('warning', `create_account ${who} group skipped: ${skipped}`);
    return { exitCode: PAM_EXIT_CREATED };
  } catch (error) {
    const report = describeError(error);
    const reason = !isKeymakerError(error)
      ? 'INTERNAL'
      : error.details.rateLimited
        ? `RATE_LIMITED scope=${typeof error.details.scope === 'string' ? error.details.scope : 'global'}`
        : error.details.remembered
          ? `${error.code} remembered=yes`
          : error.code;
    // Nothing more on stdout: the client must not learn whether an IAM user exists.
    rt.syslog.log('warning', `create_account ${who} decision=refused reason=${reason}: ${report.message}`);
    return { exitCode: report.exitCode };
  }
}

/*
 * Compat mode's key-body writer (issue 14). The lookup runs as the unprivileged lookup user and must not write
 * what later lookups trust, so the stored bodies (login/key-body-store.ts) need a root writer on the login path;
 * in compat mode PAM is the only root process there. Why the session stage, not account creation plus the
 * sync: account creation sees only the keys of her first connection, and the sync would list the keys of every
 * managed user every few minutes (IAM's per-account rate limit, fleet-wide); the session stage refreshes
 * exactly the users who log in, after sshd accepted one of their keys, and catches a key added later.
 *
 * The same root-owned wrapper as the account hook (`session optional pam_exec.so quiet type=open_session`,
 * install/pam.ts), so nothing new is installed: PAM_TYPE picks the job. It never blocks or fails the session:
 * the installed wrapper starts the detached worker (`store_key_bodies USER`) from sh and exits 0 at once
 * (install/templates.ts), pam_exec waiting only for sh; run here instead (another wrapper, the launcher), this
 * starts it the same way.
 */
function startKeyBodiesWorker(pamEnv: NodeJS.ProcessEnv, env: HostCommandEnv): HostCommandResult {
  const user = pamEnv.PAM_USER ?? '';
  if (!isValidLinuxName(user)) return { exitCode: 0 };
  try {
    (env.spawnKeyBodiesWorker ?? spawnKeyBodiesWorker)(user);
  } catch {
    // Only the next login's second IAM wave is at stake: never the session.
  }
  return { exitCode: 0 };
}

function spawnKeyBodiesWorker(user: string): void {
  const entry = process.argv[1];
  if (!entry) return;
  // The wrapper already cleared NODE_OPTIONS and NODE_PATH; the name is checked and passed as an argument.
  spawn(process.execPath, [entry, 'store_key_bodies', user], { detached: true, stdio: 'ignore' }).unref();
}

/**
 * store_key_bodies USER: the session hook's worker, as root. For an account keymaker manages (in the record,
 * not locked), lists her keys and stores the bodies of the Active IDs not stored yet, under the lookup's
 * deadline; what she no longer has Active drops out of the file. Logs what it stored; never throws for a
 * refusal (there is nobody to tell but syslog).
 */
export async function storeKeyBodiesCommand(args: string[], env: HostCommandEnv = {}): Promise<HostCommandResult> {
  if (args.length !== 1 || !isValidLinuxName(args[0]!))
    return { exitCode: EXIT_CODES.USAGE, stderr: ['usage: keymaker store_key_bodies USER'] };
  const user = args[0]!;
  const rt = await prepare(env, false);
  const who = `user=${JSON.stringify(user)}`;
  try {
    if ((env.uid ?? process.getuid?.()) !== 0) throw new HostError('NOT_ROOT', 'store_key_bodies must run as root');
    const limitMs = rt.config.deadlineMs;
    const outcome = await withDeadline(
      limitMs,
      async (signal, deadline) => {
        bindToDeadline(rt, env, signal);
        const local = await rt.accounts.user(user);
        const recorded = local ? recordedAccount(await rt.managed.readManaged(), local) : undefined;
        if (!local || !recorded || recorded.locked) return { kind: 'not_managed' as const };
        const store = new FileCacheStore({ dir: rt.paths.cacheDir, writable: true });
        const aws = { ...awsOptionsFor(rt.config, limitMs), deadline };
        const { directory } = await resolveWithConfig(aws, rt.cache('write'));
        const iamUserName = directory.iamUserNameFor(user);
        const stored = await readKeyBodies(store, iamUserName);
        const used = new Map<string, SshPublicKey>();
        const result = await directory.authorizedKeys(user, {
          includeUser: true,
          knownBody: (_name, keyId) => {
            const key = stored.get(keyId);
            if (key) used.set(keyId, key);
            return key;
          },
        });
        // The lookup's person check: a re-created IAM user of the same name is not hers to store for.
        if (result.user?.userId !== recorded.iamUserId) return { kind: 'not_managed' as const };
        const next = nextKeyBodies(used, result.fetched);
        const changed = result.fetched.length > 0 || next.size !== stored.size;
        if (changed) await writeKeyBodies(store, result.iamUserName, next);
        return { kind: changed ? ('stored' as const) : ('unchanged' as const), result, next };
      },
      () => new DeadlineError(`storing key bodies did not finish within ${limitMs} ms`),
      { settleMs: SETTLE_MS },
    );
    if (outcome.kind === 'not_managed') {
      rt.syslog.log('info', `key_bodies ${who} decision=skipped reason=NOT_MANAGED`);
      return { exitCode: 0 };
    }
    rt.syslog.log(
      'info',
      `key_bodies ${who} decision=${outcome.kind} iam_user=${outcome.result.iamUserName} fetched_bodies=${outcome.result.fetched.length} cached_bodies=${outcome.result.knownBodies} stored_bodies=${outcome.next.size}`,
    );
    return { exitCode: 0 };
  } catch (error) {
    const report = describeError(error);
    rt.syslog.log(
      'warning',
      `key_bodies ${who} decision=failed reason=${isKeymakerError(error) ? error.code : 'INTERNAL'}: ${report.message}`,
    );
    return { exitCode: report.exitCode };
  }
}

export interface SyncCommandOptions {
  dryRun?: boolean;
  json?: boolean;
  /** Host config path (default /etc/keymaker/config.json). */
  config?: string;
}

export function formatSyncReport(report: SyncReport): string[] {
  const lines: string[] = [];
  if (report.changes.length === 0 && report.failed.length === 0)
    lines.push(`sync_groups: no changes${report.dryRun ? ' needed' : ''}`);
  for (const change of report.changes) lines.push(`sync_groups: ${report.dryRun ? 'would ' : ''}${change}`);
  for (const refused of report.refused) lines.push(`sync_groups: refused group ${refused.group}: ${refused.reason}`);
  for (const skipped of report.skipped)
    lines.push(`sync_groups: skipped ${skipped.user}${skipped.group ? ` in ${skipped.group}` : ''}: ${skipped.reason}`);
  for (const failed of report.failed) lines.push(`sync_groups: FAILED ${failed}; every other change was applied`);
  return lines;
}

export function syncExitCode(report: SyncReport): number {
  if (report.failed.length > 0) return EXIT_CODES.SYNC_PARTIAL;
  if (report.refused.length > 0) return EXIT_CODES.GROUP_NOT_MANAGED;
  return 0;
}

/** sync_groups [--dry-run] [--json] [--config PATH] */
export async function syncGroupsCommand(
  options: SyncCommandOptions,
  env: HostCommandEnv = {},
): Promise<HostCommandResult> {
  const rt = await prepare(
    { ...env, paths: { ...env.paths, ...(options.config ? { configFile: options.config } : {}) } },
    false,
  );
  try {
    if (!options.dryRun && (env.uid ?? process.getuid?.()) !== 0) {
      throw new HostError('NOT_ROOT', 'sync_groups changes groups and accounts: run it as root (or with --dry-run)');
    }
    if (!options.dryRun) await prepareLookupStore(rt);
    const deadlineMs = deadlineOverride(process.env.KEYMAKER_DEADLINE_MS) ?? SYNC_DEADLINE_MS;
    const report = await withDeadline(
      deadlineMs,
      (signal, deadline) => {
        bindToDeadline(rt, env, signal);
        // A stalled request fails after requestTimeoutMs and is retried (the SDK's backoff), all within the deadline.
        const aws = {
          ...awsOptionsFor(rt.config),
          connectionTimeoutMs: Math.min(3000, Math.floor(deadlineMs / 4)),
          requestTimeoutMs: Math.max(1000, Math.min(10_000, Math.floor(deadlineMs / 4))),
          deadline,
        };
        return runGroupSync(
          {
            accounts: rt.accounts,
            admin: rt.admin,
            resolve: () => resolveWithConfig(aws, rt.cache(options.dryRun ? 'read' : 'refresh')),
            lock: options.dryRun ? (body) => body() : (body) => withLock(rt.paths.syncLock, { waitMs: 0 }, body),
            managed: rt.managed,
            managedGroups: env.managedGroups ?? fileManagedGroups(rt.paths.managedGroups, { stat: env.statPath }),
          },
          {
            dryRun: options.dryRun,
            preProvisionAccounts: rt.config.preProvisionAccounts,
            allowedExistingGroups: rt.config.allowedExistingGroups,
            reservedNames: hostReservedNames(rt.config),
          },
        );
      },
      () =>
        new DeadlineError(
          `sync_groups did not finish within ${deadlineMs / 1000} s (an IAM request or a local command hung); it was stopped and its lock released`,
        ),
      { settleMs: SETTLE_MS },
    );
    const lines = formatSyncReport(report);
    if (!report.dryRun) {
      for (const line of lines)
        rt.syslog.log(line.includes('FAILED') || line.includes('refused') ? 'warning' : 'info', line);
      // One authpriv line per grant and revocation, with the IAM user, Linux name, UID and reason.
      for (const line of report.audit) rt.syslog.log('notice', `sync_groups: ${line}`);
    }
    return {
      exitCode: syncExitCode(report),
      stderr: lines,
      ...(options.json ? { stdout: `${JSON.stringify(report)}\n` } : {}),
    };
  } catch (error) {
    const report = describeError(error);
    rt.syslog.log(
      'warning',
      `sync_groups failed${isKeymakerError(error, 'DEADLINE_EXCEEDED') ? ' at its deadline' : ', nothing changed'}: ${report.message}`,
    );
    // A failed read lands here before any change: say so. Stopped at the deadline: the read may
    // have been done and some changes applied.
    const extraLines = isKeymakerError(error, 'DEADLINE_EXCEEDED')
      ? ['sync_groups: stopped; any change already applied stands, the next run completes the rest']
      : isKeymakerError(error, 'LOCKED')
        ? []
        : ['sync_groups: nothing was changed'];
    const stdout = options.json ? `${JSON.stringify({ error: report.code, message: report.line })}\n` : undefined;
    throw withFailureOutput(error, { extraLines, ...(stdout ? { stdout } : {}) });
  }
}

/** Parses the lean entry's sync_groups arguments. */
export function parseSyncArgs(args: string[]): SyncCommandOptions | undefined {
  const options: SyncCommandOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--dry-run') options.dryRun = true;
    else if (arg === '--json') options.json = true;
    else if (arg === '--config' && args[i + 1]) options.config = args[++i];
    else if (arg.startsWith('--config=')) options.config = arg.slice('--config='.length);
    else return undefined;
  }
  return options;
}

export interface AdoptCommandOptions {
  /** Say what would be adopted, record nothing. */
  dryRun?: boolean;
}

/**
 * After `keymaker install` without --efs-home: the role's keymaker_efs_home, read through the host config's
 * credentials as the hooks read it (cache 'read': nothing written), within the lookup's deadline. So a fleet gets
 * its EFS home share from its role. `error` when the role could not be read (install says so and goes on: the
 * hooks fail closed on the same error).
 */
export async function efsHomeFromRoleCommand(env: HostCommandEnv = {}): Promise<{ efsHome?: string; error?: string }> {
  let rt: Runtime;
  try {
    rt = await prepare(env, false);
  } catch (error) {
    (env.stderr ?? ((text: string) => process.stderr.write(text)))(`${describeError(error).line}\n`);
    return { error: 'the host config could not be read' };
  }
  try {
    const limitMs = rt.config.deadlineMs;
    const config = await withDeadline(
      limitMs,
      async (signal, deadline) => {
        bindToDeadline(rt, env, signal);
        const aws = { ...awsOptionsFor(rt.config, limitMs), deadline, ...env.aws };
        return (await resolveWithConfig(aws, rt.cache('read'))).config;
      },
      () => new DeadlineError(`reading the role description did not finish within ${limitMs} ms`),
      { settleMs: SETTLE_MS },
    );
    return config.efsHome ? { efsHome: config.efsHome } : {};
  } catch (error) {
    return { error: describeError(error).message };
  }
}

/**
 * `keymaker install --adopt-legacy-accounts` (after the install itself): records in the record of
 * managed accounts the existing local accounts whose UID equals, now, the UID derived from their
 * IAM user (adopt.ts). IAM is read (never written) through the host config's credentials, as the
 * hooks read it; the record is written under the sync lock. One line per adopted account on
 * stderr (install's progress lines) and in syslog; a failure is thrown, for install's boundary.
 */
export async function adoptLegacyAccountsCommand(
  options: AdoptCommandOptions,
  env: HostCommandEnv = {},
): Promise<{ adopted: string[] }> {
  const rt = await prepare(env, false);
  const verb = options.dryRun ? 'would adopt' : 'adopted';
  try {
    if (!options.dryRun && (env.uid ?? process.getuid?.()) !== 0) {
      throw new HostError(
        'NOT_ROOT',
        'adopting accounts writes the record of managed accounts: run it as root (or with --dry-run)',
      );
    }
    const deadlineMs = deadlineOverride(process.env.KEYMAKER_DEADLINE_MS) ?? SYNC_DEADLINE_MS;
    const adopted = await withDeadline(
      deadlineMs,
      (signal, deadline) => {
        bindToDeadline(rt, env, signal);
        const aws = { ...awsOptionsFor(rt.config), deadline, ...env.aws };
        const body = async () => {
          const { directory, config } = await resolveWithConfig(aws, rt.cache('read'));
          const [iamUsers, localUsers, recorded] = await Promise.all([
            directory.listUsers(),
            rt.accounts.users(),
            rt.managed.readManaged(),
          ]);
          const plan = planAdoption(localUsers, iamUsers, recorded, {
            uidScheme: config.uidScheme,
            linuxUserSuffix: config.linuxUserSuffix,
            reservedNames: hostReservedNames(rt.config),
            uidFor: (user) => directory.uidFor(user),
          });
          if (!options.dryRun) {
            await rt.managed.recordManaged(plan.adopt.map(({ name, uid, iamUserId }) => ({ name, uid, iamUserId })));
            // Adopted accounts authenticate only through IAM from now on, like the ones keymaker makes (issue 12).
            if (plan.adopt.length > 0 && !(await rt.accounts.group(MANAGED_USERS_GROUP)))
              await rt.admin.addSystemGroup(MANAGED_USERS_GROUP);
            const members = (await rt.accounts.group(MANAGED_USERS_GROUP))?.members ?? [];
            for (const a of plan.adopt)
              if (!members.includes(a.name)) await rt.admin.addGroupMember(MANAGED_USERS_GROUP, a.name);
          }
          return plan;
        };
        return options.dryRun ? body() : withLock(rt.paths.syncLock, { waitMs: 30_000 }, body);
      },
      () => new DeadlineError(`adopting accounts did not finish within ${deadlineMs / 1000} s; nothing was recorded`),
      { settleMs: SETTLE_MS },
    );
    const lines = adopted.adopt.map(
      (a) => `${verb} account ${a.name} (uid ${a.uid}) for IAM user ${a.iamUserName} (${a.iamUserId})`,
    );
    for (const line of lines) {
      rt.stderr(`keymaker: ${line}\n`);
      if (!options.dryRun) rt.syslog.log('notice', `adopt_accounts ${line}`);
    }
    for (const skipped of adopted.skipped) rt.stderr(`keymaker: not adopted: ${skipped.name}: ${skipped.reason}\n`);
    if (lines.length === 0)
      rt.stderr(
        `keymaker: no account to adopt${adopted.skipped.length > 0 ? '' : ' (no existing local account matches its IAM user)'}\n`,
      );
    return { adopted: adopted.adopt.map((a) => a.name) };
  } catch (error) {
    rt.syslog.log('warning', `adopt_accounts failed, nothing recorded: ${describeError(error).message}`);
    throw error;
  }
}
