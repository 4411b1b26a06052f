// `keymaker agent`: the long-running host service that composes the pieces in this directory.
//   - the userdb Varlink service (NSS: libnss-systemd asks it) over an IamIdentitySource,
//   - the keys server (sshd's AuthorizedKeysCommand through keymaker-keys-client (keys-client-script.ts)) over IamKeysSource,
//   - the role description (and the host config) re-read on a schedule and on SIGHUP,
//   - a background refresh of only the users this host has seen (revocation at that interval),
//   - every decision to syslog authpriv, a status answer for `keymaker status`, clean shutdown.
//
// One "generation" holds what depends on the configuration: the resolved role config, the IAM client
// and the identity caches. A reload that yields the same configuration keeps the generation (its
// caches stay warm; only the resolver credentials are renewed through resolveDirectory's cache). A
// changed configuration starts a new generation with empty caches (names may map to other IAM users,
// UIDs or groups now). A configuration that cannot be read or resolved closes the agent: no user
// resolves and no keys are printed until a reload succeeds (fail closed), and that is logged.
//
// NSS self-loop: the identity source asks "is this a local account" through getent, whose NSS would
// ask this very agent again (and wait for its own answer). Every getent the agent runs goes through
// env(1) with SYSTEMD_BYPASS_USERDB=<service name>, which makes libnss-systemd skip this service for
// that lookup (runProcess gives children a fixed environment, so the variable is set per command).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import {
  DeadlineError,
  isKeymakerError,
  withDeadline,
  type ErrorCode,
  type IamDirectory,
  type ResolvedRoleConfig,
} from '@keymaker/core';
import { GetentAccounts, type LocalAccounts } from '../accounts/local-accounts';
import { awsOptionsFor, loadHostConfig, applyAwsEnvironment, resolveWithConfig } from '../config/host-aws';
import { efsHomeBaseOf, hostReservedNames, type HostConfig } from '../config/host-config';
import { DEFAULT_PATHS } from '../system/paths';
import { KEYS_FD_NAME, USERDB_FD_NAME } from '../install/agent-units';
import { listenFds } from './listen-fds';
import { assertTrustedFile, runtimeTrustedFiles, type StatPath } from '../system/root-owned';
import { realRuntimeSystem, type RuntimeSystem } from '../system/runtime-system';
import { createLoggerSyslog, type Syslog } from '../system/syslog';
import {
  IamDirectorySource,
  IamIdentitySource,
  type DirectorySource,
  type IdentityEvent,
  type RefreshReport,
} from './iam-identity-source';
import { IamKeysSource, KeysServer, RefusedError, type KeysEvent, type KeysSource } from './keys-server';
import type { ResolvedGroup, ResolvedUser } from './userdb-records';
import { ENDING_REFUSALS, endProcessesOf, procProcessTable, type ProcessTable } from './end-sessions';
import {
  DEFAULT_USERDB_SERVICE,
  USERDB_DIR,
  assertServiceName,
  startUserdbService,
  type IdentitySource,
} from './userdb-service';
import type { VarlinkServer } from './varlink';

export const DEFAULT_KEYS_SOCKET = '/run/keymaker/keys.sock';
export const DEFAULT_AGENT_REFRESH_SECONDS = 300;
/** The managed group's default GID: just above the wide UID range, so no derived UID or GID can take it. */
export const DEFAULT_MANAGED_GROUP_GID = 0x7ffe0000;

export interface AgentOptions {
  /** Host config file. Default /etc/keymaker/config.json. */
  configFile?: string;
  /** The userdb socket; its file name is the Varlink service name. Default /run/systemd/userdb/io.keymaker.agent. */
  userdbSocket?: string;
  /** Default /run/keymaker/keys.sock. */
  keysSocket?: string;
  /** Group owning the keys socket (the AuthorizedKeysCommandUser's). */
  keysSocketGid?: number;
  /**
   * Sockets systemd passed (listen-fds.ts), by FileDescriptorName: "userdb" and "keys" are used instead of
   * creating the socket files, so a login arriving while the agent starts waits in the listen queue.
   */
  listenFds?: Map<string, number>;
  /** Background refresh of the known users (revocation delay). Default 300 s. */
  refreshSeconds?: number;
  /** Role description (and host config) re-read. Default the refresh interval. */
  reloadSeconds?: number;
  managedGroupName?: string;
  managedGroupGid?: number;
  homeBase?: string;
  shell?: string;
  version?: string;
}

/** A reload that hangs (IAM stalled) gives up after this; the agent never waits on it forever. */
const RELOAD_DEADLINE_MS = 60_000;

/** Failures that say "IAM could not answer now", not "the configuration is different or bad". */
const TRANSIENT_RELOAD_FAILURES: ReadonlySet<ErrorCode> = new Set([
  'THROTTLED',
  'NETWORK',
  'DEADLINE_EXCEEDED',
  'AWS_ERROR',
]);
const transientReloadFailure = (error: unknown): boolean =>
  isKeymakerError(error) && TRANSIENT_RELOAD_FAILURES.has(error.code);

/** The configuration-dependent part, built from one host config. */
export interface AgentDirectory {
  config: ResolvedRoleConfig;
  directory: IamDirectory;
}

export interface AgentDeps {
  sys: RuntimeSystem;
  syslog: Syslog;
  /** Resolves the IAM directory for a host config (role description, resolver credentials). */
  connect?: (config: HostConfig) => Promise<AgentDirectory>;
  /** Builds the directory source over a directory (tests inject fakes). */
  directorySource?: (directory: AgentDirectory) => DirectorySource;
  keysSource?: (directory: AgentDirectory) => KeysSource;
  accounts?: LocalAccounts;
  /** Where SIGHUP/SIGTERM/SIGINT come from. Default process. */
  signals?: AgentSignals;
  now?: () => number;
  /** For the trusted-file checks of the host config and credentials files (tests). */
  statPath?: StatPath;
  /** The processes a revocation ends (end-sessions.ts). Default the real /proc. */
  processes?: ProcessTable;
}

export type AgentSignal = 'SIGHUP' | 'SIGTERM' | 'SIGINT';
export interface AgentSignals {
  on(signal: AgentSignal, listener: () => void): unknown;
  off(signal: AgentSignal, listener: () => void): unknown;
}

export interface AgentStatus {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  state: 'serving' | 'closed';
  closedReason?: string;
  configLoadedAt?: string;
  refreshSeconds: number;
  lastRefresh?: { at: string; checked: number; revoked: number; failed: number };
  caches: { users: number; negative: number; inFlight: number; keyBodies: number; answers: number };
  iam: { calls: number; errors: number; lastMs?: number; avgMs?: number; maxMs?: number };
  lastErrors: { at: string; message: string }[];
  sockets: { userdb: string; keys: string };
}

export interface RunningAgent {
  status(): AgentStatus;
  /** Re-reads the host config and the role description now (what SIGHUP does). */
  reload(): Promise<void>;
  /** Runs the background refresh now (what the timer does). */
  refresh(): Promise<RefreshReport | undefined>;
  stop(): Promise<void>;
  /** Settles once the agent stopped (a signal or stop()). */
  readonly stopped: Promise<void>;
}

interface Generation {
  key: string;
  identity: IamIdentitySource;
  keys: KeysSource;
}

/** IAM call timings and recent errors, for status. */
class IamStats {
  calls = 0;
  errors = 0;
  lastMs?: number;
  maxMs = 0;
  private totalMs = 0;
  readonly lastErrors: { at: string; message: string }[] = [];

  constructor(private readonly now: () => number) {}

  async time<T>(work: () => Promise<T>): Promise<T> {
    const started = this.now();
    try {
      return await work();
    } catch (error) {
      // A refusal (no such user, not in the group) is an answer, not an IAM error.
      if (!(error instanceof RefusedError) && !isKeymakerError(error, 'NO_SUCH_USER')) {
        this.errors++;
        this.error(error);
      }
      throw error;
    } finally {
      const ms = this.now() - started;
      this.calls++;
      this.lastMs = ms;
      this.totalMs += ms;
      this.maxMs = Math.max(this.maxMs, ms);
    }
  }

  error(error: unknown): void {
    this.lastErrors.push({ at: new Date(this.now()).toISOString(), message: messageOf(error) });
    if (this.lastErrors.length > 5) this.lastErrors.shift();
  }

  get avgMs(): number | undefined {
    return this.calls > 0 ? Math.round(this.totalMs / this.calls) : undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function timedDirectory(source: DirectorySource, stats: IamStats): DirectorySource {
  return {
    get uidScheme() {
      return source.uidScheme;
    },
    user: (name, signal) => stats.time(() => source.user(name, signal)),
    hasActiveKey: (name, signal) => stats.time(() => source.hasActiveKey(name, signal)),
    memberships: (name, signal) => stats.time(() => source.memberships(name, signal)),
  };
}

function timedKeys(source: KeysSource, stats: IamStats): KeysSource {
  return {
    iamUserNameFor: (name) => source.iamUserNameFor(name),
    listKeys: (name, signal) => stats.time(() => source.listKeys(name, signal)),
    checkRequiredGroup: (name, signal) => stats.time(() => source.checkRequiredGroup(name, signal)),
    getKey: (name, keyId, signal) => stats.time(() => source.getKey(name, keyId, signal)),
  };
}

/** The system with every getent run through `env SYSTEMD_BYPASS_USERDB=<service>`: local accounts only, never this agent. */
export function bypassingUserdb(sys: RuntimeSystem, serviceName: string): RuntimeSystem {
  return {
    run: (argv, options) =>
      sys.run(argv[0] === 'getent' ? ['env', `SYSTEMD_BYPASS_USERDB=${serviceName}`, ...argv] : argv, options),
    readFile: (file) => sys.readFile(file),
  };
}

/** One line per identity decision (user, IAM user, reason); never key bodies or credentials. */
export function formatIdentityEvent(event: IdentityEvent): { level: 'info' | 'notice' | 'warning'; message: string } {
  switch (event.type) {
    case 'resolved':
      return {
        level: 'info',
        message: `agent: resolved ${event.name} (IAM user ${event.iamUserName}, uid ${event.uid}, groups [${event.groups.join(',')}])`,
      };
    case 'refused':
      return {
        level: 'notice',
        message: `agent: refused ${event.name}: ${event.reason}${event.iamUserName ? ` (IAM user ${event.iamUserName})` : ''}${event.other ? ` (${event.other})` : ''}`,
      };
    case 'rate-limited':
      return { level: 'warning', message: `agent: refused ${event.name}: rate limited (${event.scope})` };
    case 'error':
      return {
        level: 'warning',
        message: `agent: resolving ${event.name} failed${event.kept ? ' (last good answer kept)' : ''}: ${messageOf(event.error)}`,
      };
    case 'revoked':
      return {
        level: 'notice',
        message: `agent: revoked ${event.name} (IAM user ${event.iamUserName}, uid ${event.uid}): ${event.reason}`,
      };
    case 'expired':
      return {
        level: 'notice',
        message: `agent: expired ${event.name} (IAM user ${event.iamUserName}): not verified since ${new Date(event.verifiedAt).toISOString()}`,
      };
    case 'changed':
      return {
        level: 'notice',
        message: `agent: ${event.name} (IAM user ${event.iamUserName}) changed: ${event.what.join('; ')}`,
      };
    case 'group-dropped':
      return { level: 'notice', message: `agent: group ${event.group} of ${event.name} not served: ${event.reason}` };
  }
}

export function formatKeysEvent(event: KeysEvent): { level: 'info' | 'notice' | 'warning'; message: string } {
  switch (event.type) {
    case 'answer': {
      const { answer } = event;
      const offered = event.fingerprint ? ` offered ${event.fingerprint}` : '';
      if (answer.status === 200)
        return {
          level: 'info',
          message: `agent keys: ${event.user} (IAM user ${answer.iamUserName})${offered}: ${answer.lines.length} key(s) [${answer.fingerprints.join(',')}] in ${Math.round(event.ms)} ms${answer.cached ? ' (cached)' : ''}`,
        };
      if (answer.status === 404)
        return { level: 'notice', message: `agent keys: ${event.user}${offered}: refused (${answer.code})` };
      return { level: 'warning', message: `agent keys: ${event.user}${offered}: no keys, in doubt: ${answer.reason}` };
    }
    case 'rejected-key':
      return {
        level: 'warning',
        message: `agent keys: key ${event.keyId} of ${event.user} (IAM user ${event.iamUserName}) rejected: ${event.reason}`,
      };
    case 'bad-request':
      return { level: 'notice', message: `agent keys: bad request: ${event.reason}` };
    case 'connection-limit':
      return { level: 'warning', message: 'agent keys: connection limit reached' };
  }
}

/** Resolves the directory the way the host's other commands do, with resolver credentials cached in memory. */
export function hostConnector(): (config: HostConfig) => Promise<AgentDirectory> {
  const memory = new Map<string, unknown>();
  const store = {
    get: async (key: string) => memory.get(key),
    set: async (key: string, value: unknown) => void memory.set(key, value),
  };
  return async (config) => {
    applyAwsEnvironment(config);
    // No per-call deadline on the clients: each request brings its own signal (keys) or timeout (identity).
    const resolution = await resolveWithConfig(awsOptionsFor(config), { store, ttlMs: 0, refresh: true });
    return { config: resolution.config, directory: resolution.directory };
  };
}

/** Starts the agent: both sockets listening, the timers and signal handlers set. */
export async function runAgent(options: AgentOptions, deps: AgentDeps): Promise<RunningAgent> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  const version = options.version ?? '0.1.0';
  const configFile = options.configFile ?? DEFAULT_PATHS.configFile;
  const userdbSocket = options.userdbSocket ?? path.join(USERDB_DIR, DEFAULT_USERDB_SERVICE);
  const serviceName = assertServiceName(path.basename(userdbSocket));
  const keysSocket = options.keysSocket ?? DEFAULT_KEYS_SOCKET;
  const refreshSeconds = options.refreshSeconds ?? DEFAULT_AGENT_REFRESH_SECONDS;
  if (!(Number.isInteger(refreshSeconds) && refreshSeconds >= 1 && refreshSeconds <= 3600))
    throw new RangeError('the refresh interval must be 1-3600 seconds');
  const reloadSeconds = options.reloadSeconds ?? refreshSeconds;
  const accounts = deps.accounts ?? new GetentAccounts(bypassingUserdb(deps.sys, serviceName));
  const connect = deps.connect ?? hostConnector();
  const directorySource = deps.directorySource ?? ((d: AgentDirectory) => new IamDirectorySource(d.directory));
  const keysSource = deps.keysSource ?? ((d: AgentDirectory) => new IamKeysSource(d.directory.iam, d.config));
  const signals = deps.signals ?? process;
  const { syslog } = deps;
  const stats = new IamStats(now);

  let generation: Generation | undefined;
  let closedReason: string | undefined = 'not loaded yet';
  let configLoadedAt: number | undefined;
  let lastRefresh: AgentStatus['lastRefresh'];

  const processes = deps.processes ?? procProcessTable(fs);
  const logIdentity = (event: IdentityEvent) => {
    // A revoked or expired user gets no keys from that moment: drop sshd's short-lived answer too.
    if (event.type === 'revoked' || event.type === 'expired') keysServer.service.answers.invalidate(event.name);
    const line = formatIdentityEvent(event);
    syslog.log(line.level, line.message);
    if (event.type === 'revoked' && ENDING_REFUSALS.has(event.reason)) void endSessions(event);
  };

  /** IAM says she is out: her sessions and processes end too (her files stay). */
  async function endSessions(event: Extract<IdentityEvent, { type: 'revoked' }>): Promise<void> {
    const who = `${event.name} (IAM user ${event.iamUserName}, uid ${event.uid})`;
    try {
      // A local account that holds this UID is not hers to end (and not the agent's to touch).
      const local = await accounts.userByUid(event.uid);
      if (local) {
        syslog.log(
          'warning',
          `agent: revoked ${who}: uid ${event.uid} is local account ${local.name}'s; no process ended`,
        );
        return;
      }
      const result = await endProcessesOf(event.uid, processes);
      if (result.ended + result.left > 0)
        syslog.log(
          result.left > 0 ? 'err' : 'notice',
          `agent: revoked ${who}: ended ${result.ended} process(es)${result.left > 0 ? `; ${result.left} could not be signalled (the agent needs CAP_KILL)` : ''}`,
        );
    } catch (error) {
      syslog.log('err', `agent: revoked ${who}: ending her processes failed: ${messageOf(error)}`);
    }
  }

  // ---- the delegates the servers hold: the current generation, or nothing (closed) ----
  const identity: IdentitySource = {
    lookupUser: async (name, signal) => generation?.identity.lookupUser(name, signal),
    userByUid: async (uid, signal) => generation?.identity.userByUid(uid, signal),
    group: async (name, signal) => generation?.identity.group(name, signal),
    groupByGid: async (gid, signal) => generation?.identity.groupByGid(gid, signal),
    groupsOfUser: async (name, signal) => generation?.identity.groupsOfUser(name, signal),
    knownUsers: (): readonly ResolvedUser[] => generation?.identity.knownUsers() ?? [],
    knownGroups: (): readonly ResolvedGroup[] => generation?.identity.knownGroups() ?? [],
  };
  const closed = () => new Error(`the agent is closed: ${closedReason ?? 'no configuration'}`);
  const keys: KeysSource = {
    iamUserNameFor: (name) => {
      if (!generation) throw closed();
      return generation.keys.iamUserNameFor(name);
    },
    listKeys: (name, signal) => (generation ? generation.keys.listKeys(name, signal) : Promise.reject(closed())),
    checkRequiredGroup: (name, signal) =>
      generation ? generation.keys.checkRequiredGroup(name, signal) : Promise.reject(closed()),
    getKey: (name, keyId, signal) =>
      generation ? generation.keys.getKey(name, keyId, signal) : Promise.reject(closed()),
  };

  // Keys only for names the agent serves: a local account (or anything the identity gates refuse)
  // gets no answer from the agent; doubt (closed, rate limited, IAM failing) is 503, never keys.
  const admit = async (name: string, signal: AbortSignal): Promise<void> => {
    const current = generation;
    if (!current) throw closed();
    if (await current.identity.lookupUser(name, signal)) return;
    const refusal = current.identity.refusalOf(name);
    if (refusal === 'local-account')
      throw new RefusedError('LOCAL_ACCOUNT', `${name} is a local account: not answered by the agent`);
    if (refusal !== undefined && refusal !== 'error')
      throw new RefusedError('NOT_MANAGED', `${name} is not served by the agent: ${refusal}`);
    throw new Error(`${name} could not be resolved now`);
  };

  const keysServer = new KeysServer({
    source: timedKeys(keys, stats),
    admit,
    status: () => agentStatus(),
    log: (event) => {
      const line = formatKeysEvent(event);
      syslog.log(line.level, line.message);
    },
  });

  function buildGeneration(host: HostConfig, directory: AgentDirectory, key: string): Generation {
    return {
      key,
      identity: new IamIdentitySource({
        directory: timedDirectory(directorySource(directory), stats),
        accounts,
        managedGroup: { name: options.managedGroupName, gid: options.managedGroupGid ?? DEFAULT_MANAGED_GROUP_GID },
        reservedNames: hostReservedNames(host),
        // Homes on EFS: below the share's mount point (the session hook makes them there).
        homeBase: options.homeBase ?? efsHomeBaseOf(host),
        shell: options.shell ?? host.loginShell,
        refreshIntervalMs: refreshSeconds * 1000,
        log: logIdentity,
      }),
      keys: keysSource(directory),
    };
  }

  let reloading: Promise<void> | undefined;
  async function runReload(): Promise<void> {
    try {
      const host = await loadHostConfig(deps.sys, configFile);
      // The same checks as the hooks: root-owned, not writable by others (else anyone could pick the IAM account).
      for (const file of runtimeTrustedFiles(configFile, host, host.authorizedKeysCommandUser))
        await assertTrustedFile(file, deps.statPath);
      let directory: AgentDirectory;
      try {
        // The directory's clients outlive the reload, so the deadline bounds the wait, not their requests.
        directory = await withDeadline(
          RELOAD_DEADLINE_MS,
          () => connect(host),
          () => new DeadlineError(`re-reading the role description took over ${RELOAD_DEADLINE_MS / 1000} s`),
        );
      } catch (error) {
        // IAM slow or failing for a moment: the configuration did not change, it could not be re-read. Keep
        // serving the last one (its users still expire on their own schedule) for a bounded time, then close.
        const keptFor = configLoadedAt === undefined ? Infinity : now() - configLoadedAt;
        if (generation && transientReloadFailure(error) && keptFor < reloadSeconds * 3000) {
          stats.error(error);
          syslog.log(
            'warning',
            `agent: re-reading the role description failed, last configuration kept: ${messageOf(error)}`,
          );
          return;
        }
        throw error;
      }
      const key = JSON.stringify({ host, role: directory.config });
      configLoadedAt = now();
      if (generation?.key === key) return;
      const first = generation === undefined && closedReason === 'not loaded yet';
      generation = buildGeneration(host, directory, key);
      keysServer.service.clearCaches();
      closedReason = undefined;
      syslog.log(
        'notice',
        first
          ? `agent: configuration loaded (role config ${JSON.stringify(directory.config)})`
          : `agent: configuration changed or readable again: caches dropped (role config ${JSON.stringify(directory.config)})`,
      );
    } catch (error) {
      // Fail closed: nothing resolves and no keys are printed until a reload succeeds.
      generation = undefined;
      keysServer.service.clearCaches();
      closedReason = `configuration unreadable: ${messageOf(error)}`;
      stats.error(error);
      syslog.log('err', `agent: ${closedReason}; serving nothing until it can be read`);
    }
  }
  const reload = (): Promise<void> => {
    reloading ??= runReload().finally(() => {
      reloading = undefined;
    });
    return reloading;
  };

  const refresh = async (): Promise<RefreshReport | undefined> => {
    const current = generation;
    if (!current) return undefined;
    const report = await current.identity.refresh();
    lastRefresh = {
      at: new Date(now()).toISOString(),
      checked: report.checked,
      revoked: report.revoked.length,
      failed: report.failed.length,
    };
    if (report.revoked.length + report.failed.length + report.expired.length + report.changed.length > 0)
      syslog.log(
        'notice',
        `agent: refresh checked ${report.checked}: revoked [${report.revoked.map((r) => r.name).join(',')}], failed [${report.failed.map((f) => f.name).join(',')}], expired [${report.expired.join(',')}]`,
      );
    return report;
  };

  await reload();
  let userdb: VarlinkServer | undefined;
  try {
    ({ server: userdb } = await startUserdbService({
      source: identity,
      serviceName,
      directory: path.dirname(userdbSocket),
      fd: options.listenFds?.get(USERDB_FD_NAME),
      version,
      log: (event) => {
        if (event.type === 'bad-record' || event.type === 'handler-error')
          syslog.log('warning', `agent userdb: ${event.type}: ${messageOf(event.error)}`);
        else if (event.type === 'deadline')
          syslog.log('notice', `agent userdb: ${event.method} missed its deadline (${event.ms} ms)`);
      },
    }));
    const keysFd = options.listenFds?.get(KEYS_FD_NAME);
    await keysServer.listen(keysFd === undefined ? { path: keysSocket, gid: options.keysSocketGid } : { fd: keysFd });
  } catch (error) {
    await userdb?.close();
    throw error;
  }

  const timers = [
    setInterval(() => void refresh().catch((error: unknown) => stats.error(error)), refreshSeconds * 1000),
    setInterval(() => void reload(), reloadSeconds * 1000),
  ];

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | undefined;
  const onHup = () => {
    syslog.log('notice', 'agent: SIGHUP: re-reading the configuration');
    void reload();
  };
  const onStop = (signal: string) => {
    syslog.log('notice', `agent: ${signal}: shutting down`);
    void stop();
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  signals.on('SIGHUP', onHup);
  signals.on('SIGTERM', onTerm);
  signals.on('SIGINT', onInt);

  function stop(): Promise<void> {
    stopping ??= (async () => {
      for (const timer of timers) clearInterval(timer);
      signals.off('SIGHUP', onHup);
      signals.off('SIGTERM', onTerm);
      signals.off('SIGINT', onInt);
      await Promise.all([userdb?.close(), keysServer.close()]);
      await syslog.flush(2000);
      resolveStopped();
    })();
    return stopping;
  }

  syslog.log(
    'notice',
    `agent ${version}: serving userdb on ${userdbSocket} and keys on ${keysSocket}, refresh every ${refreshSeconds} s`,
  );

  return {
    reload,
    refresh,
    stop,
    stopped,
    status: () => agentStatus(),
  };

  function agentStatus(): AgentStatus {
    const caches = generation?.identity.stats();
    return {
      version,
      pid: process.pid,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.round((now() - startedAt) / 1000),
      state: generation ? 'serving' : 'closed',
      ...(closedReason ? { closedReason } : {}),
      ...(configLoadedAt ? { configLoadedAt: new Date(configLoadedAt).toISOString() } : {}),
      refreshSeconds,
      ...(lastRefresh ? { lastRefresh } : {}),
      caches: {
        users: caches?.users ?? 0,
        negative: caches?.negative ?? 0,
        inFlight: caches?.inFlight ?? 0,
        keyBodies: keysServer.service.bodies.size,
        answers: keysServer.service.answers.size,
      },
      iam: { calls: stats.calls, errors: stats.errors, lastMs: stats.lastMs, avgMs: stats.avgMs, maxMs: stats.maxMs },
      lastErrors: [...stats.lastErrors],
      sockets: { userdb: userdbSocket, keys: keysSocket },
    };
  }
}

export interface AgentCommandOptions extends AgentOptions {
  /** Copy every log line to stderr (a foreground run). Default true. */
  echo?: boolean;
}

/**
 * `keymaker agent`: runs the agent in the foreground until SIGTERM/SIGINT; 0 after a clean stop.
 * The syslog socket comes from the host config as read at start (a config unreadable then still
 * starts the agent, closed, so a supervisor does not restart it in a loop; the reason is logged).
 */
export async function agentCommand(
  options: AgentCommandOptions,
  sys: RuntimeSystem = realRuntimeSystem,
): Promise<number> {
  let syslogSocket: string | undefined;
  let refreshSeconds: number | undefined;
  try {
    const host = await loadHostConfig(sys, options.configFile ?? DEFAULT_PATHS.configFile);
    syslogSocket = host.syslogSocket;
    refreshSeconds = host.agentRefreshSeconds;
  } catch {
    /* runAgent logs why it is closed */
  }
  const echo = options.echo ?? true;
  const syslog = createLoggerSyslog({
    socket: syslogSocket,
    echo: echo ? (line) => process.stderr.write(`${line}\n`) : undefined,
  });
  // A --refresh-seconds on the command line wins over the host config's agentRefreshSeconds.
  const agent = await runAgent(
    {
      listenFds: listenFds(process.env, process.pid),
      ...options,
      refreshSeconds: options.refreshSeconds ?? refreshSeconds,
    },
    { sys, syslog },
  );
  await agent.stopped;
  return 0;
}
