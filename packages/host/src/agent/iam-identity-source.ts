// The agent's IdentitySource over IAM: who may exist on this host, resolved on demand and kept fresh
// by a background refresh, behind narrow interfaces (DirectorySource, LocalAccounts, a clock) so that
// tests, or later a published snapshot, can feed it instead of per-host IAM calls.
//
// Gates, in order, for a name (the same as today's lookup, lookup.ts):
//   1. a valid Linux name, not reserved (core's list + the host's reservedNames), not the managed
//      group's name                                                      (no I/O)
//   2. a cached answer: positive (fresh for refreshIntervalMs, served stale up to maxStaleMs while a
//      re-check runs), negative (negativeTtlMs; errorTtlMs after a failure)       (no I/O)
//   3. the flood guard: a per-name and a global token bucket; over either -> not found, logged,
//      no I/O at all                                                     (no I/O)
//   4. not a local account of that name (LocalAccounts)                  (no IAM call)
//   5. IAM: the user exists (unique ID), then in parallel: at least one active key, and membership
//      of keymaker_require_iam_group when set (+ the user's prefixed groups, the same IAM call)
//   6. the derived UID is no local account's UID and no local group's GID, nor a known user's UID
//      (a collision: the second user is refused, never merged) nor a served group's GID.
// Costs: a name that is not an IAM user is 1 IAM call (GetUser); an IAM user is 3 (GetUser, then
// ListSSHPublicKeys + ListGroupsForUser in parallel). The flood guard allows at most
// `globalBurst + elapsed * globalPerMinute / 60000` resolutions of names that do not turn out to be served
// users, whatever the names are: with the defaults 1,000 random names in a burst cost at most 20
// resolutions (20 IAM calls when none exists). A resolution that ends in a served user gives its token
// back, so real users do not ration one another (an agent restarted on a busy host resolves them all);
// only a flood of unknown names uses the guard up, and then new names wait for it like any others.
//
// By UID/GID and for groups it answers only from what this host already resolved: IAM is never
// enumerated. Groups are the prefixed IAM groups of the known users (prefix stripped, GID derived
// from the group's unique ID, members = known users), plus one managed group every served user is
// in (for sshd `Match Group`). A group disappears when no known user is in it any more (deleted in
// IAM, or all its members left or were revoked): members are read from each user's own group list,
// so no per-group IAM call is needed.
//
// Revocation: refresh() (called by the agent on a timer: no timers in here) re-resolves every known
// user with the same gates, at most refreshConcurrency at a time. A user gone from IAM, from the
// required group, or left without an active key stops resolving at once. A failed re-check keeps
// the last good answer for at most maxStaleMs after it was last verified; then the entry expires
// (fails closed). refresh() reports what changed, for the revocation log.
//
// Local accounts: in agent mode NSS itself asks this agent (nsswitch `passwd: files systemd`), so
// the LocalAccounts given here must not loop back into it: read files only (e.g. getent -s files) or
// run getent with SYSTEMD_BYPASS_USERDB=<service name>. A reader that fails refuses the name.
import {
  isKeymakerError,
  isReservedLinuxName,
  isValidLinuxName,
  linuxNameOfIamGroup,
  linuxUserNameForIamUser,
  unixIdFor,
  type IamDirectory,
  type UidScheme,
} from '@keymaker/core';
import type { LocalAccounts } from '../accounts/local-accounts';
import { ExpiringMap, KeyedTokenBuckets, TokenBucket, systemClock, type Clock } from './caches';
import { isValidUnixId, type ResolvedGroup, type ResolvedUser } from './userdb-records';
import type { IdentitySource } from './userdb-service';

/** An IAM user behind a Linux name. */
export interface DirectoryUser {
  iamUserName: string;
  /** IAM's unique ID (AIDA...): the UID is derived from it. */
  userId: string;
}

/** A prefixed IAM group, as a Linux group name. */
export interface DirectoryGroup {
  iamGroupName: string;
  /** The IAM name with the prefix stripped. */
  linuxName: string;
  /** IAM's unique ID (AGPA...): the GID is derived from it. */
  groupId: string;
}

export interface DirectoryMemberships {
  /** Member of keymaker_require_iam_group; true when none is required. */
  inRequiredGroup: boolean;
  /** The user's IAM groups that carry the prefix. */
  groups: DirectoryGroup[];
}

/**
 * What the agent needs from IAM, and nothing more (no enumeration). Every method may be slow; the
 * signal aborts when the agent stopped waiting. Unknown users are `undefined` / false / not in the
 * required group, never an error.
 */
export interface DirectorySource {
  readonly uidScheme: UidScheme;
  user(linuxName: string, signal: AbortSignal): Promise<DirectoryUser | undefined>;
  hasActiveKey(iamUserName: string, signal: AbortSignal): Promise<boolean>;
  memberships(iamUserName: string, signal: AbortSignal): Promise<DirectoryMemberships>;
}

/**
 * DirectorySource over core's IamDirectory (shape-checked answers, all pages). IamDirectory does not
 * take a signal: an abandoned call finishes and is dropped.
 */
export class IamDirectorySource implements DirectorySource {
  constructor(private readonly directory: IamDirectory) {}

  get uidScheme(): UidScheme {
    return this.directory.config.uidScheme;
  }

  async user(linuxName: string): Promise<DirectoryUser | undefined> {
    const iamUserName = this.directory.iamUserNameFor(linuxName);
    try {
      const user = await this.directory.getUser(iamUserName);
      // The answer must map back to exactly this login (suffix, case): anything else is not hers.
      if (linuxUserNameForIamUser(user.userName, this.directory.config.linuxUserSuffix) !== linuxName) return undefined;
      return { iamUserName: user.userName, userId: user.userId };
    } catch (error) {
      if (isKeymakerError(error, 'NO_SUCH_USER')) return undefined;
      throw error;
    }
  }

  async hasActiveKey(iamUserName: string): Promise<boolean> {
    try {
      return (await this.directory.listSshPublicKeys(iamUserName)).some((key) => key.status === 'Active');
    } catch (error) {
      if (isKeymakerError(error, 'NO_SUCH_USER')) return false;
      throw error;
    }
  }

  async memberships(iamUserName: string): Promise<DirectoryMemberships> {
    let groups;
    try {
      groups = await this.directory.listGroupsForUser(iamUserName);
    } catch (error) {
      if (isKeymakerError(error, 'NO_SUCH_USER')) return { inRequiredGroup: false, groups: [] };
      throw error;
    }
    const required = this.directory.config.requireIamGroup;
    const prefixed: DirectoryGroup[] = [];
    for (const group of groups) {
      const linuxName = linuxNameOfIamGroup(group.groupName, this.directory.config);
      if (linuxName) prefixed.push({ iamGroupName: group.groupName, linuxName, groupId: group.groupId });
    }
    return { inRequiredGroup: !required || groups.some((group) => group.groupName === required), groups: prefixed };
  }
}

export type RefusalReason =
  | 'local-account'
  | 'local-check-failed'
  | 'no-iam-user'
  | 'bad-iam-answer'
  | 'no-active-key'
  | 'not-in-required-group'
  | 'uid-of-local-account'
  | 'uid-of-local-group'
  | 'uid-collision'
  | 'uid-collides-with-group'
  | 'name-collides-with-group';

export type IdentityEvent =
  | { type: 'resolved'; name: string; iamUserName: string; uid: number; groups: string[] }
  | { type: 'refused'; name: string; reason: RefusalReason; iamUserName?: string; uid?: number; other?: string }
  | { type: 'rate-limited'; name: string; scope: 'name' | 'global' }
  | { type: 'error'; name: string; error: unknown; kept: boolean }
  | { type: 'revoked'; name: string; reason: RefusalReason; iamUserName: string; uid: number }
  | { type: 'expired'; name: string; iamUserName: string; verifiedAt: number }
  | { type: 'changed'; name: string; iamUserName: string; what: string[] }
  | { type: 'group-dropped'; name: string; group: string; reason: string };

export interface FloodGuardOptions {
  /** Resolutions of one name in a burst. Default 2. */
  perNameBurst?: number;
  /** Then one per this many ms. Default 60,000. */
  perNameIntervalMs?: number;
  /** Resolutions of any names in a burst. Default 20. */
  globalBurst?: number;
  /** Then this many per minute. Default 12. */
  globalPerMinute?: number;
}

export interface IamIdentitySourceOptions {
  directory: DirectorySource;
  /** Local accounts (files only in agent mode: see the module comment). */
  accounts: LocalAccounts;
  /** The group every served user is in (sshd `Match Group`). name default keymaker-users. */
  managedGroup: { name?: string; gid: number };
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
  /** Default /home. */
  homeBase?: string;
  /** Default /bin/bash. */
  shell?: string;
  clock?: Clock;
  /** Positive TTL and the agent's refresh period. Default 5 min. */
  refreshIntervalMs?: number;
  /** How long after its last successful check a user is still served when re-checks fail. Default 15 min. */
  maxStaleMs?: number;
  /** Negative answers (no such user, refused). Default 60 s. */
  negativeTtlMs?: number;
  /** After a failed resolution of an unknown name (IAM error, timeout). Default 10 s. */
  errorTtlMs?: number;
  /** A resolution still running after this is abandoned as failed. Default 10 s. */
  resolveTimeoutMs?: number;
  /** Users re-checked at once by refresh(). Default 4. */
  refreshConcurrency?: number;
  flood?: FloodGuardOptions;
  log?: (event: IdentityEvent) => void;
}

export interface RefreshReport {
  /** Users re-checked against IAM. */
  checked: number;
  unchanged: number;
  /** Users still served whose UID, IAM user or groups changed. */
  changed: { name: string; what: string[] }[];
  /** Users that stopped resolving: IAM said no. */
  revoked: { name: string; iamUserName: string; reason: RefusalReason }[];
  /** Re-checks that failed: the last good answer is kept (until maxStaleMs). */
  failed: { name: string; error: string }[];
  /** Users dropped because they were not verified within maxStaleMs. */
  expired: string[];
  groupsAdded: string[];
  groupsRemoved: string[];
}

interface UserEntry {
  user: ResolvedUser;
  userId: string;
  groups: { linuxName: string; gid: number }[];
  verifiedAt: number;
}

type Outcome =
  | { kind: 'user'; entry: UserEntry }
  | { kind: 'refused'; reason: RefusalReason; iamUserName?: string; uid?: number; other?: string }
  | { kind: 'error'; error: unknown };

type Change =
  | { kind: 'served'; user: ResolvedUser; what?: string[]; isNew: boolean }
  | { kind: 'refused'; reason: RefusalReason; revoked?: string }
  | { kind: 'failed'; error: unknown; kept: boolean }
  | { kind: 'rate-limited' };

const UNIQUE_ID = /^[A-Z0-9]{1,128}$/i;
const DEFAULTS = {
  homeBase: '/home',
  shell: '/bin/bash',
  managedGroupName: 'keymaker-users',
  refreshIntervalMs: 5 * 60_000,
  maxStaleMs: 15 * 60_000,
  negativeTtlMs: 60_000,
  errorTtlMs: 10_000,
  resolveTimeoutMs: 10_000,
  refreshConcurrency: 4,
  perNameBurst: 2,
  perNameIntervalMs: 60_000,
  globalBurst: 20,
  globalPerMinute: 12,
};

class AbortedError extends Error {
  constructor() {
    super('the caller stopped waiting');
    this.name = 'AbortError';
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class IamIdentitySource implements IdentitySource {
  private readonly directory: DirectorySource;
  private readonly accounts: LocalAccounts;
  private readonly clock: Clock;
  private readonly reserved: readonly string[];
  private readonly homeBase: string;
  private readonly shell: string;
  private readonly managedName: string;
  private readonly managedGid: number;
  private readonly ttl: number;
  private readonly maxStale: number;
  private readonly negativeTtl: number;
  private readonly errorTtl: number;
  private readonly resolveTimeout: number;
  private readonly concurrency: number;
  private readonly log: (event: IdentityEvent) => void;

  private readonly users = new Map<string, UserEntry>();
  private readonly negative: ExpiringMap<RefusalReason | 'error'>;
  private readonly flights = new Map<string, Promise<Change>>();
  private readonly perName: KeyedTokenBuckets;
  private readonly global: TokenBucket;
  private expiredSinceReport: string[] = [];
  private refreshing: Promise<RefreshReport> | undefined;
  private reportedGroups: Set<string> | undefined;
  /** IAM resolutions started (on demand, re-checks and refreshes): for status and tests. */
  resolutions = 0;

  constructor(options: IamIdentitySourceOptions) {
    this.directory = options.directory;
    this.accounts = options.accounts;
    this.clock = options.clock ?? systemClock;
    this.reserved = options.reservedNames ?? [];
    this.homeBase = options.homeBase ?? DEFAULTS.homeBase;
    this.shell = options.shell ?? DEFAULTS.shell;
    this.managedName = options.managedGroup.name ?? DEFAULTS.managedGroupName;
    this.managedGid = options.managedGroup.gid;
    if (!isValidLinuxName(this.managedName))
      throw new TypeError(`invalid managed group name ${JSON.stringify(this.managedName)}`);
    if (!isValidUnixId(this.managedGid) || this.managedGid === 0)
      throw new TypeError(`invalid managed group GID ${this.managedGid}`);
    if (!this.homeBase.startsWith('/') || this.homeBase.includes(':'))
      throw new TypeError(`invalid home base ${JSON.stringify(this.homeBase)}`);
    if (!this.shell.startsWith('/') || this.shell.includes(':'))
      throw new TypeError(`invalid shell ${JSON.stringify(this.shell)}`);
    this.ttl = options.refreshIntervalMs ?? DEFAULTS.refreshIntervalMs;
    this.maxStale = Math.max(options.maxStaleMs ?? DEFAULTS.maxStaleMs, this.ttl);
    this.negativeTtl = options.negativeTtlMs ?? DEFAULTS.negativeTtlMs;
    this.errorTtl = options.errorTtlMs ?? DEFAULTS.errorTtlMs;
    this.resolveTimeout = options.resolveTimeoutMs ?? DEFAULTS.resolveTimeoutMs;
    this.concurrency = Math.max(1, options.refreshConcurrency ?? DEFAULTS.refreshConcurrency);
    this.log = options.log ?? (() => undefined);
    const flood = { ...DEFAULTS, ...options.flood };
    this.negative = new ExpiringMap(this.clock);
    this.perName = new KeyedTokenBuckets(flood.perNameBurst, 1 / flood.perNameIntervalMs, this.clock);
    this.global = new TokenBucket(flood.globalBurst, flood.globalPerMinute / 60_000, this.clock);
  }

  // ---- IdentitySource ----

  async lookupUser(name: string, signal?: AbortSignal): Promise<ResolvedUser | undefined> {
    if (signal?.aborted) throw new AbortedError();
    if (!this.servable(name)) return undefined;
    this.prune();
    const known = this.users.get(name);
    if (known) {
      this.recheckIfStale(name, known);
      return known.user;
    }
    if (this.negative.get(name) !== undefined) return undefined;
    const change = await this.until(this.start(name, 'lookup'), signal);
    return change.kind === 'served' ? change.user : undefined;
  }

  async userByUid(uid: number, signal?: AbortSignal): Promise<ResolvedUser | undefined> {
    if (signal?.aborted) throw new AbortedError();
    this.prune();
    for (const [name, entry] of this.users) {
      if (entry.user.uid === uid) {
        this.recheckIfStale(name, entry);
        return entry.user;
      }
    }
    return undefined;
  }

  async group(name: string, signal?: AbortSignal): Promise<ResolvedGroup | undefined> {
    if (signal?.aborted) throw new AbortedError();
    return this.knownGroups().find((group) => group.linuxName === name);
  }

  async groupByGid(gid: number, signal?: AbortSignal): Promise<ResolvedGroup | undefined> {
    if (signal?.aborted) throw new AbortedError();
    return this.knownGroups().find((group) => group.gid === gid);
  }

  async groupsOfUser(name: string, signal?: AbortSignal): Promise<readonly string[] | undefined> {
    const user = await this.lookupUser(name, signal);
    if (!user) return undefined;
    const entry = this.users.get(name);
    if (!entry) return undefined;
    return [this.managedName, ...entry.groups.map((group) => group.linuxName)];
  }

  knownUsers(): readonly ResolvedUser[] {
    this.prune();
    return [...this.users.values()].map((entry) => entry.user);
  }

  knownGroups(): readonly ResolvedGroup[] {
    this.prune();
    const managed: ResolvedGroup = {
      linuxName: this.managedName,
      gid: this.managedGid,
      members: [...this.users.keys()],
    };
    return [managed, ...this.aggregateGroups(undefined).values()];
  }

  // ---- refresh ----

  /** Re-checks every known user; one at a time per call (a call while one runs joins it). */
  refresh(): Promise<RefreshReport> {
    this.refreshing ??= this.runRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async runRefresh(): Promise<RefreshReport> {
    // Groups are compared with the last report's, so an expiry between two refreshes is still reported.
    const groupsBefore = this.reportedGroups ?? new Set(this.aggregateGroups(undefined).keys());
    this.prune();
    const report: RefreshReport = {
      checked: 0,
      unchanged: 0,
      changed: [],
      revoked: [],
      failed: [],
      expired: [],
      groupsAdded: [],
      groupsRemoved: [],
    };
    const names = [...this.users.keys()];
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++]!;
        const iamUserName = this.users.get(name)?.user.iamUserName ?? name;
        const change = await this.start(name, 'refresh');
        report.checked++;
        if (change.kind === 'served') {
          if (change.what && change.what.length > 0) report.changed.push({ name, what: change.what });
          else report.unchanged++;
        } else if (change.kind === 'refused') {
          report.revoked.push({ name, iamUserName, reason: change.reason });
        } else if (change.kind === 'failed') {
          report.failed.push({ name, error: errorText(change.error) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, names.length) }, worker));
    this.prune();
    report.expired = this.expiredSinceReport;
    this.expiredSinceReport = [];
    const groupsAfter = new Set(this.aggregateGroups(undefined).keys());
    this.reportedGroups = groupsAfter;
    report.groupsAdded = [...groupsAfter].filter((g) => !groupsBefore.has(g)).sort();
    report.groupsRemoved = [...groupsBefore].filter((g) => !groupsAfter.has(g)).sort();
    return report;
  }

  // ---- resolution ----

  private servable(name: string): boolean {
    return isValidLinuxName(name) && !isReservedLinuxName(name, this.reserved) && name !== this.managedName;
  }

  /** Drops users not verified within maxStale (fail closed when re-checks keep failing). */
  private prune(): void {
    const now = this.clock();
    for (const [name, entry] of this.users) {
      if (now - entry.verifiedAt >= this.maxStale) {
        this.users.delete(name);
        this.expiredSinceReport.push(name);
        this.log({ type: 'expired', name, iamUserName: entry.user.iamUserName, verifiedAt: entry.verifiedAt });
      }
    }
  }

  private recheckIfStale(name: string, entry: UserEntry): void {
    if (this.clock() - entry.verifiedAt >= this.ttl) void this.start(name, 'recheck');
  }

  /** The answer, or a rejection once the caller's signal aborts (the work goes on, and is cached). */
  private until<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return work;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new AbortedError());
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** One resolution per name at a time; on-demand ones pay the flood guard, refreshes do not. */
  private start(name: string, origin: 'lookup' | 'recheck' | 'refresh'): Promise<Change> {
    const running = this.flights.get(name);
    if (running) return running;
    if (origin !== 'refresh') {
      const scope = !this.perName.available(name) ? 'name' : !this.global.available() ? 'global' : undefined;
      if (scope) {
        this.log({ type: 'rate-limited', name, scope });
        return Promise.resolve({ kind: 'rate-limited' });
      }
      this.perName.take(name);
      this.global.take();
    }
    this.resolutions++;
    const flight = this.resolveWithin(name)
      .then((outcome) => this.apply(name, outcome))
      .then((change) => {
        // A name that turned out to be a user this host serves gives its global token back: the guard is
        // for names IAM does not know, and an agent restarted on a busy host must not ration its own users.
        if (origin !== 'refresh' && change.kind === 'served') this.global.refund();
        return change;
      })
      .catch((error: unknown): Change => ({ kind: 'failed', error, kept: false }))
      .finally(() => this.flights.delete(name));
    this.flights.set(name, flight);
    return flight;
  }

  private async resolveWithin(name: string): Promise<Outcome> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        controller.abort();
        resolve({
          kind: 'error',
          error: new Error(`resolution of ${name} did not finish within ${this.resolveTimeout} ms`),
        });
      }, this.resolveTimeout);
      timer.unref?.();
    });
    try {
      return await Promise.race([
        this.resolve(name, controller.signal).catch((error: unknown): Outcome => ({ kind: 'error', error })),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The gates with I/O: local accounts, then IAM. Never throws for a refusal. */
  private async resolve(name: string, signal: AbortSignal): Promise<Outcome> {
    try {
      if (await this.accounts.user(name)) return { kind: 'refused', reason: 'local-account' };
    } catch (error) {
      return { kind: 'error', error };
    }
    const found = await this.directory.user(name, signal);
    if (!found) return { kind: 'refused', reason: 'no-iam-user' };
    if (typeof found.iamUserName !== 'string' || typeof found.userId !== 'string' || !UNIQUE_ID.test(found.userId)) {
      return { kind: 'refused', reason: 'bad-iam-answer' };
    }
    const iamUserName = found.iamUserName;
    const [hasKey, memberships] = await Promise.all([
      this.directory.hasActiveKey(iamUserName, signal),
      this.directory.memberships(iamUserName, signal),
    ]);
    if (memberships?.inRequiredGroup !== true) return { kind: 'refused', reason: 'not-in-required-group', iamUserName };
    if (hasKey !== true) return { kind: 'refused', reason: 'no-active-key', iamUserName };
    const uid = unixIdFor(found.userId, this.directory.uidScheme);
    if (!isValidUnixId(uid) || uid === 0) return { kind: 'refused', reason: 'bad-iam-answer', iamUserName };
    try {
      const [localUser, localGroup] = await Promise.all([this.accounts.userByUid(uid), this.accounts.groupByGid(uid)]);
      if (localUser)
        return { kind: 'refused', reason: 'uid-of-local-account', iamUserName, uid, other: localUser.name };
      if (localGroup)
        return { kind: 'refused', reason: 'uid-of-local-group', iamUserName, uid, other: localGroup.name };
    } catch (error) {
      return { kind: 'error', error };
    }
    const groups = await this.localFreeGroups(name, Array.isArray(memberships.groups) ? memberships.groups : []);
    return {
      kind: 'user',
      entry: {
        user: { linuxName: name, uid, gid: uid, iamUserName, homeBase: this.homeBase, shell: this.shell },
        userId: found.userId,
        groups,
        verifiedAt: this.clock(),
      },
    };
  }

  /** The user's groups that may be served: valid, not reserved, no local group's name or GID. One bad group drops only itself. */
  private async localFreeGroups(
    user: string,
    groups: readonly DirectoryGroup[],
  ): Promise<{ linuxName: string; gid: number }[]> {
    const checked = await Promise.all(
      groups.map(async (group): Promise<{ linuxName: string; gid: number } | undefined> => {
        const drop = (reason: string) => {
          this.log({ type: 'group-dropped', name: user, group: String(group?.linuxName), reason });
          return undefined;
        };
        if (!group || typeof group.linuxName !== 'string' || !isValidLinuxName(group.linuxName))
          return drop('invalid name');
        if (typeof group.groupId !== 'string' || !UNIQUE_ID.test(group.groupId)) return drop('invalid group ID');
        if (isReservedLinuxName(group.linuxName, this.reserved)) return drop('reserved name');
        if (group.linuxName === this.managedName) return drop('the managed group name');
        const gid = unixIdFor(group.groupId, this.directory.uidScheme);
        if (!isValidUnixId(gid) || gid === 0 || gid === this.managedGid)
          return drop('GID of the managed group or invalid');
        try {
          const [byName, byGid] = await Promise.all([
            this.accounts.group(group.linuxName),
            this.accounts.groupByGid(gid),
          ]);
          if (byName) return drop('a local group has that name');
          if (byGid) return drop(`local group ${byGid.name} has GID ${gid}`);
        } catch (error) {
          return drop(`local check failed: ${errorText(error)}`);
        }
        return { linuxName: group.linuxName, gid };
      }),
    );
    const seen = new Set<string>();
    return checked.filter(
      (g): g is { linuxName: string; gid: number } =>
        g !== undefined && !seen.has(g.linuxName) && Boolean(seen.add(g.linuxName)),
    );
  }

  /** Groups of the known users (optionally leaving one user out), first seen wins a name or GID. */
  private aggregateGroups(
    except: string | undefined,
  ): Map<string, { linuxName: string; gid: number; members: string[] }> {
    const groups = new Map<string, { linuxName: string; gid: number; members: string[] }>();
    const gids = new Map<number, string>();
    for (const [name, entry] of this.users) {
      if (name === except) continue;
      for (const group of entry.groups) {
        const existing = groups.get(group.linuxName);
        if (existing) {
          if (existing.gid === group.gid) existing.members.push(name);
          continue;
        }
        if (gids.has(group.gid)) continue;
        gids.set(group.gid, group.linuxName);
        groups.set(group.linuxName, { linuxName: group.linuxName, gid: group.gid, members: [name] });
      }
    }
    return groups;
  }

  /** Applies an outcome to the caches (collisions are checked against what is served now). */
  private apply(name: string, outcome: Outcome): Change {
    const previous = this.users.get(name);
    if (outcome.kind === 'error') {
      const kept = previous !== undefined;
      if (!kept) this.negative.set(name, 'error', this.errorTtl);
      this.log({ type: 'error', name, error: outcome.error, kept });
      return { kind: 'failed', error: outcome.error, kept };
    }
    if (outcome.kind === 'user') {
      const refusal = this.collision(name, outcome.entry);
      if (refusal) return this.refuse(name, previous, refusal);
      const entry = outcome.entry;
      const others = this.aggregateGroups(name);
      const othersByGid = new Map([...others.values()].map((g) => [g.gid, g.linuxName]));
      const userNames = new Set(this.users.keys());
      userNames.add(name);
      const uids = new Set([...this.users.values()].map((e) => e.user.uid));
      entry.groups = entry.groups.filter((group) => {
        const existing = others.get(group.linuxName);
        const problem = userNames.has(group.linuxName)
          ? 'a user has that name'
          : existing && existing.gid !== group.gid
            ? `served with GID ${existing.gid}`
            : !existing && othersByGid.has(group.gid)
              ? `GID ${group.gid} is group ${othersByGid.get(group.gid)}'s`
              : uids.has(group.gid) || group.gid === entry.user.uid
                ? `GID ${group.gid} is a user's private group`
                : undefined;
        if (problem) this.log({ type: 'group-dropped', name, group: group.linuxName, reason: problem });
        return !problem;
      });
      this.users.set(name, entry);
      this.negative.delete(name);
      const groupNames = entry.groups.map((g) => g.linuxName);
      if (!previous) {
        this.log({
          type: 'resolved',
          name,
          iamUserName: entry.user.iamUserName,
          uid: entry.user.uid,
          groups: groupNames,
        });
        return { kind: 'served', user: entry.user, isNew: true };
      }
      const what: string[] = [];
      if (previous.userId !== entry.userId) what.push(`IAM user ID ${previous.userId} -> ${entry.userId}`);
      if (previous.user.uid !== entry.user.uid) what.push(`uid ${previous.user.uid} -> ${entry.user.uid}`);
      const before = previous.groups
        .map((g) => g.linuxName)
        .sort()
        .join(',');
      const after = [...groupNames].sort().join(',');
      if (before !== after) what.push(`groups [${before}] -> [${after}]`);
      if (what.length > 0) this.log({ type: 'changed', name, iamUserName: entry.user.iamUserName, what });
      return { kind: 'served', user: entry.user, what, isNew: false };
    }
    return this.refuse(name, previous, outcome);
  }

  private collision(name: string, entry: UserEntry): Extract<Outcome, { kind: 'refused' }> | undefined {
    const { uid, iamUserName } = entry.user;
    for (const [other, known] of this.users) {
      if (other !== name && known.user.uid === uid)
        return { kind: 'refused', reason: 'uid-collision', iamUserName, uid, other };
    }
    const groups = this.aggregateGroups(name);
    if (uid === this.managedGid)
      return { kind: 'refused', reason: 'uid-collides-with-group', iamUserName, uid, other: this.managedName };
    for (const group of groups.values()) {
      if (group.gid === uid)
        return { kind: 'refused', reason: 'uid-collides-with-group', iamUserName, uid, other: group.linuxName };
    }
    if (groups.has(name)) return { kind: 'refused', reason: 'name-collides-with-group', iamUserName, uid, other: name };
    return undefined;
  }

  private refuse(
    name: string,
    previous: UserEntry | undefined,
    refusal: Extract<Outcome, { kind: 'refused' }>,
  ): Change {
    this.negative.set(name, refusal.reason, this.negativeTtl);
    if (previous) {
      this.users.delete(name);
      this.log({
        type: 'revoked',
        name,
        reason: refusal.reason,
        iamUserName: previous.user.iamUserName,
        uid: previous.user.uid,
      });
      return { kind: 'refused', reason: refusal.reason, revoked: previous.user.iamUserName };
    }
    this.log({
      type: 'refused',
      name,
      reason: refusal.reason,
      iamUserName: refusal.iamUserName,
      uid: refusal.uid,
      other: refusal.other,
    });
    return { kind: 'refused', reason: refusal.reason };
  }

  /**
   * Why a name does not resolve now, from what the last resolution left (no I/O): a refusal reason,
   * 'error' after a failed resolution, 'invalid-name' for a name the gates refuse outright, or
   * undefined when nothing is known (never resolved, or rate limited).
   */
  refusalOf(name: string): RefusalReason | 'error' | 'invalid-name' | undefined {
    if (!this.servable(name)) return 'invalid-name';
    if (this.users.has(name)) return undefined;
    return this.negative.get(name);
  }

  /** Sizes, for `keymaker status`. */
  stats(): { users: number; negative: number; inFlight: number; resolutions: number } {
    return {
      users: this.users.size,
      negative: this.negative.size,
      inFlight: this.flights.size,
      resolutions: this.resolutions,
    };
  }
}
