/*
 * Abuse protection for the PAM hook. sshd runs it in the auth stage for ANY
 * name a client sends, before authentication, so without a limit every
 * connection attempt with a made-up name would cost IAM calls (and IAM
 * throttling would then refuse real users). Two defences, applied after the
 * name is validated and found to have no local account (invalid names and
 * existing accounts never get here, and cost no IAM call):
 *
 *  - a negative cache: a name IAM refused (no such user, no active key, not
 *    in the required group) is refused again without an IAM call for
 *    `negativeTtlMs` (10 minutes);
 *  - token buckets over IAM lookups from the hook, shared by every hook
 *    process on the host (pam_exec spawns one per attempt): one per source
 *    address (PAM_RHOST, an IPv6 address as its /64; 5 at once, then one every 15 s), one per login name
 *    (3, then one every 20 s) and one global (20, then one every 3 s). A
 *    lookup needs a token from all three; with any empty the hook refuses
 *    without an IAM call (and logs which one). The per-source bucket is
 *    smaller than the global one, so one client flooding random names cannot
 *    empty it alone and lock out every other client's first login (issue 13,
 *    point 8); the global one stays for IAM's sake.
 *
 * So N attempts with random names over T seconds cost at most
 * burst + T/3 lookups in all, and at most 5 + T/15 from one address:
 * 1,000 names in one minute cost at most 40 lookups, each a handful of
 * IAM/STS requests (MAX_REQUESTS_PER_LOOKUP).
 *
 * State lives in a root-only file (/run/keymaker/pam-state.json: directory
 * root 0700, file root 0600, gone at reboot), changed under a lock and
 * replaced by an atomic rename. A missing file is a fresh start; a corrupt
 * or foreign-owned one is treated as an EMPTY bucket (never as permission):
 * the negative cache only ever refuses, and an empty bucket refills on its own.
 * The file stays bounded: at most maxSources sources and maxNames names (a
 * bucket that refilled is dropped; past the cap the least recently used go).
 * An administrator can clear it with `rm /run/keymaker/pam-state.json`.
 */
import { constants, promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { AwsError, HostError, errorForCode, isKeymakerError, isValidLinuxName, type ErrorCode } from '@keymaker/core';
import { writeFileAtomic } from '../system/atomic-write';
import { acquireShortLock } from '../system/lock';

export interface PamGuardPolicy {
  /** The global bucket (IAM throttling is shared by every host of the account). */
  burst: number;
  refillIntervalMs: number;
  /** One bucket per source address (PAM_RHOST): smaller and slower than the global one. */
  sourceBurst: number;
  sourceRefillIntervalMs: number;
  /** One bucket per login name, for names asked again without a remembered refusal. */
  nameBurst: number;
  nameRefillIntervalMs: number;
  negativeTtlMs: number;
  /** Bound on remembered names (oldest dropped first); keeps the file small. */
  maxRemembered: number;
  /** Bounds on tracked sources and names (least recently used dropped first). */
  maxSources: number;
  maxNames: number;
}

/**
 * One source gets 5 lookups at once and then one every 15 s: a fifth of the
 * global refill, and a quarter of its burst, so a flood from one address
 * leaves at least 15 global lookups and 4/5 of the refill to everyone else.
 * An attacker with several addresses (several IPv6 /64s) can still empty the
 * global bucket together: that bound exists for IAM's sake and is kept.
 */
export const PAM_GUARD_POLICY: PamGuardPolicy = {
  burst: 20,
  refillIntervalMs: 3000,
  sourceBurst: 5,
  sourceRefillIntervalMs: 15_000,
  nameBurst: 3,
  nameRefillIntervalMs: 20_000,
  negativeTtlMs: 10 * 60_000,
  maxRemembered: 2000,
  maxSources: 1000,
  maxNames: 1000,
};

/**
 * IAM/STS requests one admitted lookup may make: role config resolution
 * (GetCallerIdentity, GetRole, AssumeRole for a resolver account) and the
 * user's keys, user record and groups, each possibly retried once.
 */
export const MAX_REQUESTS_PER_LOOKUP = 16;

export const PAM_STATE_DIR = '/run/keymaker';
export const PAM_STATE_FILE = 'pam-state.json';

/** IAM answers worth remembering: they will not change within minutes for a made-up name. */
export const REMEMBERED_REFUSALS: readonly ErrorCode[] = ['NO_SUCH_USER', 'NO_SUCH_KEY', 'NOT_IN_REQUIRED_GROUP'];

/** The source of a connection without PAM_RHOST (a local `su`-style caller): one shared bucket. */
export const LOCAL_SOURCE = '-';

/**
 * The bucket key of a PAM_RHOST value: an address (or a host name with UseDNS)
 * as is; anything else (empty, odd bytes, too long) shares the bucket '?' so
 * a client cannot invent unlimited keys or forge state-file content.
 */
export function sourceKey(rhost: string | undefined): string {
  if (rhost === undefined || rhost === '' || rhost === LOCAL_SOURCE) return LOCAL_SOURCE;
  if (!/^[0-9A-Za-z.:%_/-]{1,255}$/.test(rhost)) return '?';
  // One IPv6 client usually holds a whole /64: it is one source, not 2^64 of them.
  const v6 = ipv6Prefix64(rhost);
  return v6 ?? rhost;
}

/** "2001:db8:1:2::/64" for an IPv6 address (not v4-mapped), else undefined. */
function ipv6Prefix64(address: string): string | undefined {
  const bare = address.split('%')[0]!;
  if (!net.isIPv6(bare) || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(bare)) return undefined;
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined];
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export interface Bucket {
  /** Tokens left (fractional while refilling). */
  tokens: number;
  refilledAtMs: number;
}

export interface GuardState {
  version: 2;
  global: Bucket;
  /** Source address -> its bucket; only buckets not yet refilled are kept. */
  sources: Record<string, Bucket>;
  /** Login name -> its bucket; only buckets not yet refilled are kept. */
  names: Record<string, Bucket>;
  /** name -> the refusal IAM gave and until when it is remembered. */
  refused: Record<string, { code: ErrorCode; untilMs: number }>;
}

export type LimitScope = 'global' | 'source' | 'name';

export type Admission =
  | { kind: 'admit' }
  | { kind: 'remembered'; code: ErrorCode; remainingMs: number }
  | { kind: 'rate-limited'; scope: LimitScope; retryInMs: number };

export function freshGuardState(nowMs: number, policy: PamGuardPolicy = PAM_GUARD_POLICY): GuardState {
  return { version: 2, global: { tokens: policy.burst, refilledAtMs: nowMs }, sources: {}, names: {}, refused: {} };
}

/** What a corrupt state file counts as: no tokens left (they refill), nothing remembered. */
export function emptyGuardState(nowMs: number): GuardState {
  return { version: 2, global: { tokens: 0, refilledAtMs: nowMs }, sources: {}, names: {}, refused: {} };
}

function isBucket(b: unknown): b is Bucket {
  const x = b as Partial<Bucket>;
  return (
    !!x &&
    typeof x === 'object' &&
    typeof x.tokens === 'number' &&
    Number.isFinite(x.tokens) &&
    x.tokens >= 0 &&
    typeof x.refilledAtMs === 'number' &&
    Number.isFinite(x.refilledAtMs)
  );
}

function isBucketMap(m: unknown, max: number, validKey: (key: string) => boolean): m is Record<string, Bucket> {
  return (
    !!m &&
    typeof m === 'object' &&
    !Array.isArray(m) &&
    Object.keys(m).length <= max &&
    Object.entries(m as Record<string, unknown>).every(([key, b]) => validKey(key) && isBucket(b))
  );
}

/** A clock that went back must not turn into extra tokens. */
function clampBucket(b: Bucket, burst: number, nowMs: number): Bucket {
  return { tokens: Math.min(b.tokens, burst), refilledAtMs: Math.min(b.refilledAtMs, nowMs) };
}

function clampMap(m: Record<string, Bucket>, burst: number, nowMs: number): Record<string, Bucket> {
  const out: Record<string, Bucket> = {};
  for (const [key, b] of Object.entries(m)) out[key] = clampBucket(b, burst, nowMs);
  return out;
}

/**
 * Parses the state file strictly; undefined text = no file yet; anything
 * malformed (including a version 1 file from before per-source limits) =
 * emptyGuardState.
 */
export function parseGuardState(
  text: string | undefined,
  nowMs: number,
  policy: PamGuardPolicy = PAM_GUARD_POLICY,
): GuardState {
  if (text === undefined) return freshGuardState(nowMs, policy);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return emptyGuardState(nowMs);
  }
  const s = raw as Partial<GuardState>;
  const ok =
    !!s &&
    typeof s === 'object' &&
    s.version === 2 &&
    isBucket(s.global) &&
    isBucketMap(s.sources, policy.maxSources, (key) => sourceKey(key) === key) &&
    isBucketMap(s.names, policy.maxNames, isValidLinuxName) &&
    !!s.refused &&
    typeof s.refused === 'object' &&
    !Array.isArray(s.refused) &&
    Object.keys(s.refused).length <= policy.maxRemembered &&
    Object.entries(s.refused).every(
      ([name, entry]) =>
        isValidLinuxName(name) &&
        !!entry &&
        REMEMBERED_REFUSALS.includes(entry.code) &&
        typeof entry.untilMs === 'number' &&
        Number.isFinite(entry.untilMs),
    );
  if (!ok) return emptyGuardState(nowMs);
  // A clock that went back must not turn into extra tokens or eternal entries.
  const refused: GuardState['refused'] = {};
  for (const [name, entry] of Object.entries(s.refused!)) {
    refused[name] = { code: entry.code, untilMs: Math.min(entry.untilMs, nowMs + policy.negativeTtlMs) };
  }
  return {
    version: 2,
    global: clampBucket(s.global!, policy.burst, nowMs),
    sources: clampMap(s.sources!, policy.sourceBurst, nowMs),
    names: clampMap(s.names!, policy.nameBurst, nowMs),
    refused,
  };
}

export function serializeGuardState(state: GuardState): string {
  return `${JSON.stringify(state)}\n`;
}

function refillBucket(b: Bucket | undefined, nowMs: number, burst: number, intervalMs: number): Bucket {
  if (!b) return { tokens: burst, refilledAtMs: nowMs };
  const elapsed = Math.max(0, nowMs - b.refilledAtMs);
  return { tokens: Math.min(burst, b.tokens + elapsed / intervalMs), refilledAtMs: nowMs };
}

/** Refills every bucket of a map, drops the full ones (a full bucket is a fresh one), keeps the newest `max`. */
function refillMap(
  m: Record<string, Bucket>,
  nowMs: number,
  burst: number,
  intervalMs: number,
  max: number,
): Record<string, Bucket> {
  const kept: [string, Bucket, number][] = [];
  for (const [key, b] of Object.entries(m)) {
    const r = refillBucket(b, nowMs, burst, intervalMs);
    // The last use is when the bucket was last below full: older = evicted first.
    if (r.tokens < burst) kept.push([key, r, b.refilledAtMs]);
  }
  kept.sort((a, b) => b[2] - a[2]);
  const out: Record<string, Bucket> = {};
  for (const [key, b] of kept.slice(0, max)) out[key] = b;
  return out;
}

function withEntry(m: Record<string, Bucket>, key: string, b: Bucket, max: number): Record<string, Bucket> {
  const out: Record<string, Bucket> = { ...m };
  delete out[key];
  out[key] = b;
  const keys = Object.keys(out);
  if (keys.length > max) {
    keys.sort((a, c) => out[a]!.refilledAtMs - out[c]!.refilledAtMs);
    for (const drop of keys.filter((k) => k !== key).slice(0, keys.length - max)) delete out[drop];
  }
  return out;
}

function pruned(refused: GuardState['refused'], nowMs: number): GuardState['refused'] {
  const out: GuardState['refused'] = {};
  for (const [name, entry] of Object.entries(refused)) if (entry.untilMs > nowMs) out[name] = entry;
  return out;
}

/**
 * Decides whether the hook may ask IAM about `name` for a client at `source`
 * now. Admitted only when the global, the source's and the name's buckets
 * each have a token; then one is taken from each. A refusal takes none.
 */
export function admit(
  state: GuardState,
  name: string,
  nowMs: number,
  policy: PamGuardPolicy = PAM_GUARD_POLICY,
  source: string = LOCAL_SOURCE,
): { state: GuardState; admission: Admission } {
  const key = sourceKey(source);
  const refused = pruned(state.refused, nowMs);
  const remembered = Object.prototype.hasOwnProperty.call(refused, name) ? refused[name] : undefined;
  const next: GuardState = {
    version: 2,
    global: refillBucket(state.global, nowMs, policy.burst, policy.refillIntervalMs),
    sources: refillMap(state.sources, nowMs, policy.sourceBurst, policy.sourceRefillIntervalMs, policy.maxSources),
    names: refillMap(state.names, nowMs, policy.nameBurst, policy.nameRefillIntervalMs, policy.maxNames),
    refused,
  };
  if (remembered)
    return {
      state: next,
      admission: { kind: 'remembered', code: remembered.code, remainingMs: remembered.untilMs - nowMs },
    };
  const own = (m: Record<string, Bucket>, k: string) => (Object.prototype.hasOwnProperty.call(m, k) ? m[k] : undefined);
  const src = own(next.sources, key) ?? { tokens: policy.sourceBurst, refilledAtMs: nowMs };
  const nm = own(next.names, name) ?? { tokens: policy.nameBurst, refilledAtMs: nowMs };
  // The narrowest limit is named first: it is the one the client can do something about.
  const checks: [LimitScope, Bucket, number][] = [
    ['source', src, policy.sourceRefillIntervalMs],
    ['name', nm, policy.nameRefillIntervalMs],
    ['global', next.global, policy.refillIntervalMs],
  ];
  for (const [scope, b, intervalMs] of checks) {
    if (b.tokens < 1)
      return {
        state: next,
        admission: { kind: 'rate-limited', scope, retryInMs: Math.ceil((1 - b.tokens) * intervalMs) },
      };
  }
  return {
    state: {
      ...next,
      global: { ...next.global, tokens: next.global.tokens - 1 },
      sources: withEntry(next.sources, key, { tokens: src.tokens - 1, refilledAtMs: nowMs }, policy.maxSources),
      names: isValidLinuxName(name)
        ? withEntry(next.names, name, { tokens: nm.tokens - 1, refilledAtMs: nowMs }, policy.maxNames)
        : next.names,
    },
    admission: { kind: 'admit' },
  };
}

/** Remembers IAM's refusal of `name` (only the refusals in REMEMBERED_REFUSALS); bounded in size. */
export function rememberRefusal(
  state: GuardState,
  name: string,
  code: ErrorCode,
  nowMs: number,
  policy: PamGuardPolicy = PAM_GUARD_POLICY,
): GuardState {
  if (!REMEMBERED_REFUSALS.includes(code) || !isValidLinuxName(name)) return state;
  const refused = pruned(state.refused, nowMs);
  delete refused[name];
  refused[name] = { code, untilMs: nowMs + policy.negativeTtlMs };
  const names = Object.keys(refused);
  if (names.length > policy.maxRemembered) {
    // Drop the entries that expire first (the oldest).
    names.sort((a, b) => refused[a]!.untilMs - refused[b]!.untilMs);
    for (const drop of names.slice(0, names.length - policy.maxRemembered)) delete refused[drop];
  }
  return { ...state, refused };
}

export function forgetName(state: GuardState, name: string): GuardState {
  if (!Object.prototype.hasOwnProperty.call(state.refused, name)) return state;
  const refused = { ...state.refused };
  delete refused[name];
  return { ...state, refused };
}

// ---------------------------------------------------------------- the state file

export interface GuardStore {
  /** Runs `change` on the current state under the lock and saves what it returns. */
  update<T>(change: (state: GuardState, nowMs: number) => { state: GuardState; result: T }): Promise<T>;
}

/** Refuses a state directory that is not a root-owned 0700 directory (never follows a symlink). */
async function ensureStateDir(dir: string): Promise<void> {
  const uid = process.getuid?.() ?? -1;
  try {
    await fs.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new HostError('SYSTEM_COMMAND_FAILED', `cannot create ${dir}: ${(error as Error).message}`);
    }
  }
  const st = await fs.lstat(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new HostError(
      'UNSAFE_PATH',
      `${dir} must be a directory owned by root with mode 0700 (it holds the login hook's rate limit); remove it (rm -r ${dir}) and keymaker recreates it`,
    );
  }
}

async function readStateFile(file: string): Promise<string | undefined | null> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    return null; // a symlink (ELOOP) or unreadable: corrupt
  }
  try {
    const st = await handle.stat();
    // Only our own file counts; anything else is treated as corrupt (an empty bucket).
    if (!st.isFile() || st.uid !== (process.getuid?.() ?? -1) || (st.mode & 0o077) !== 0 || st.size > 1_000_000)
      return null;
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export interface FileGuardStoreOptions {
  dir?: string;
  policy?: PamGuardPolicy;
  now?: () => number;
  /** How long to wait for another hook process's lock before refusing. */
  lockWaitMs?: number;
}

/** The cross-process store: lock, read (validated), change, atomic write, unlock. */
export function fileGuardStore(options: FileGuardStoreOptions = {}): GuardStore {
  const dir = options.dir ?? PAM_STATE_DIR;
  const policy = options.policy ?? PAM_GUARD_POLICY;
  const now = options.now ?? Date.now;
  const file = path.join(dir, PAM_STATE_FILE);
  return {
    async update(change) {
      await ensureStateDir(dir);
      // Held for a read and a rename; a lock older than 10 s is a holder that died (or a reused pid).
      const lock = await acquireShortLock(path.join(dir, 'pam-state.lock'), {
        waitMs: options.lockWaitMs ?? 3000,
        maxHoldMs: 10_000,
      });
      try {
        const text = await readStateFile(file);
        const nowMs = now();
        const current = text === null ? emptyGuardState(nowMs) : parseGuardState(text, nowMs, policy);
        const { state, result } = change(current, nowMs);
        writeFileAtomic(file, serializeGuardState(state), { mode: 0o600 });
        return result;
      } finally {
        await lock.release();
      }
    },
  };
}

/** An in-memory store (unit tests, one process). */
export function memoryGuardStore(
  options: { policy?: PamGuardPolicy; now?: () => number } = {},
): GuardStore & { state?: GuardState } {
  const policy = options.policy ?? PAM_GUARD_POLICY;
  const now = options.now ?? Date.now;
  const store: GuardStore & { state?: GuardState } = {
    async update(change) {
      const nowMs = now();
      const current = store.state ?? freshGuardState(nowMs, policy);
      const { state, result } = change(current, nowMs);
      store.state = state;
      return result;
    },
  };
  return store;
}

// ---------------------------------------------------------------- the guard the hook uses

/** What createAccountForLogin calls around its IAM lookup. */
export interface LoginGuard {
  /** Throws (no IAM call must follow) when the name is remembered as refused or the bucket is empty. */
  admit(name: string, source?: string): Promise<void>;
  /** Reports how the lookup ended: a refusal to remember, or success (forgets the name). */
  settle(name: string, error: unknown): Promise<void>;
}

export function loginGuard(store: GuardStore, policy: PamGuardPolicy = PAM_GUARD_POLICY): LoginGuard {
  return {
    async admit(name, source = LOCAL_SOURCE) {
      const admission = await store.update((state, nowMs) => {
        const r = admit(state, name, nowMs, policy, source);
        return { state: r.state, result: r.admission };
      });
      if (admission.kind === 'remembered') {
        // The remembered answer again, filed as it was first (IAM's NO_SUCH_*, a refusal's NOT_IN_REQUIRED_GROUP).
        throw errorForCode(
          admission.code,
          `${name} was refused by IAM (${admission.code}) within the last ${Math.round(policy.negativeTtlMs / 60_000)} minutes; refused again without an IAM call (remembered ${Math.ceil(admission.remainingMs / 1000)} s more)`,
          { details: { remembered: true } },
        );
      }
      if (admission.kind === 'rate-limited') {
        const [what, burst, intervalMs] =
          admission.scope === 'source'
            ? [`from source ${sourceKey(source)}`, policy.sourceBurst, policy.sourceRefillIntervalMs]
            : admission.scope === 'name'
              ? [`for ${name}`, policy.nameBurst, policy.nameRefillIntervalMs]
              : ['on this host', policy.burst, policy.refillIntervalMs];
        throw new AwsError(
          'THROTTLED',
          `too many account-creation lookups ${what} (limit ${burst}, then 1 every ${intervalMs / 1000} s); refused without an IAM call, try again in ${Math.ceil(admission.retryInMs / 1000)} s`,
          { details: { rateLimited: true, scope: admission.scope } },
        );
      }
    },
    async settle(name, error) {
      if (error === undefined) {
        await store.update((state) => ({ state: forgetName(state, name), result: undefined }));
      } else if (isKeymakerError(error) && REMEMBERED_REFUSALS.includes(error.code)) {
        await store.update((state, nowMs) => ({
          state: rememberRefusal(state, name, error.code, nowMs, policy),
          result: undefined,
        }));
      }
    },
  };
}
