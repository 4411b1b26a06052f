/*
 * The lookup's per-name cache and limit (issue 13, point 8). sshd runs the
 * lookup once per offered key (and twice for the key that logs in), each a
 * new process: 50 wrong keys offered for one managed name cost 50 lookups,
 * about 150 IAM requests, and IAM throttling is shared by every host of the
 * account.
 *
 * Why the cache holds no key list. The lookup runs as the unprivileged
 * lookup user (`keymaker`); in-process memory does not outlive one offer,
 * and nothing root writes is on the lookup path at that rate (the root-only
 * cache holds the role config, not key lists). Any file the lookup can
 * write, every process running as that user can write too: a key list read
 * back from there would let whoever gets that uid print any key for any
 * name, i.e. log in as anyone keymaker manages. So the store keeps only
 * what can REFUSE, never grant:
 *
 *  - the SHA256 fingerprints IAM listed for the name in the last
 *    `listedTtlMs` (10 s): an offered key whose fingerprint is not among
 *    them is refused without an IAM call (logged `NO_SUCH_KEY cached=yes`).
 *    A listed fingerprint always gets a live IAM lookup, and only that live
 *    answer prints keys; a forged file can therefore only refuse. The cost:
 *    a key added in IAM within the last 10 s is refused for those seconds
 *    (fail closed), and a name IAM refused is refused from the store for
 *    those seconds too;
 *  - a token bucket of live lookups per name (10 at once, then one every
 *    3 s), refused without an IAM call (`THROTTLED`). A client that knows a
 *    user's PUBLIC key can offer it again and again and spend that bucket:
 *    that delays the user's logins by seconds, and is the trade-off chosen
 *    over unbounded IAM calls (sshd gives the lookup no client address).
 *
 * The store is /run/keymaker-lookup/<name>.json, a directory root creates
 * for the lookup user (owner that user, 0700; the group sync and the PAM
 * hook create it, /run is gone at reboot). A missing directory, one not
 * owned by the lookup user or open to others, or a foreign, corrupt or
 * symlinked file means no cache and no limit for that lookup (a live
 * lookup, logged): the store only saves IAM calls, it never decides who
 * logs in. Concurrent lookups of one name may lose an update (last rename
 * wins), so the limit is approximate under a burst of parallel offers.
 */
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { AwsError, isKeymakerError } from '@keymaker/core';
import { writeFileAtomic } from '../system/atomic-write';
import type { Syslog } from '../system/syslog';

export interface LookupGuardPolicy {
  listedTtlMs: number;
  burst: number;
  refillIntervalMs: number;
  /** At most this many name files (a name's file is useless after ttl and refill). */
  maxNames: number;
}

export const LOOKUP_GUARD_POLICY: LookupGuardPolicy = {
  listedTtlMs: 10_000,
  burst: 10,
  refillIntervalMs: 3000,
  maxNames: 2000,
};

export const LOOKUP_STATE_DIR = '/run/keymaker-lookup';

export interface LookupGuard {
  /** Before any IAM call: throws (nothing printed, no IAM call) to refuse. */
  before(name: string, fingerprint: string | undefined): Promise<void>;
  /** After the live answer: the fingerprints IAM listed, or an IAM refusal (nothing listed). */
  after(name: string, outcome: { fingerprints: string[] } | { error: unknown }): Promise<void>;
}

interface NameState {
  version: 1;
  listed: string[];
  listedAtMs: number;
  tokens: number;
  refilledAtMs: number;
}

/** IAM answers that mean "no key of this name is listed": remembered for the TTL. */
const REFUSALS_LISTING_NOTHING = ['NO_SUCH_USER', 'NO_SUCH_KEY', 'NOT_IN_REQUIRED_GROUP', 'NOT_MANAGED'];

function parseNameState(text: string, nowMs: number, policy: LookupGuardPolicy): NameState | undefined {
  let s: Partial<NameState>;
  try {
    s = JSON.parse(text) as Partial<NameState>;
  } catch {
    return undefined;
  }
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (
    !s ||
    s.version !== 1 ||
    !Array.isArray(s.listed) ||
    s.listed.length > 100 ||
    !s.listed.every((f) => typeof f === 'string' && f.length < 200) ||
    !num(s.listedAtMs) ||
    !num(s.tokens) ||
    s.tokens! < 0 ||
    !num(s.refilledAtMs)
  ) {
    return undefined;
  }
  // A clock that went back (or a forged file) gains nothing: at most a full bucket, never a future time.
  return {
    version: 1,
    listed: s.listed,
    listedAtMs: Math.min(s.listedAtMs!, nowMs),
    tokens: Math.min(s.tokens!, policy.burst),
    refilledAtMs: Math.min(s.refilledAtMs!, nowMs),
  };
}

function refilled(state: NameState | undefined, nowMs: number, policy: LookupGuardPolicy): NameState {
  if (!state) return { version: 1, listed: [], listedAtMs: -Infinity, tokens: policy.burst, refilledAtMs: nowMs };
  const tokens = Math.min(
    policy.burst,
    state.tokens + Math.max(0, nowMs - state.refilledAtMs) / policy.refillIntervalMs,
  );
  return { ...state, tokens, refilledAtMs: nowMs };
}

export interface FileLookupGuardOptions {
  dir?: string;
  policy?: LookupGuardPolicy;
  now?: () => number;
  /** Where a store that cannot be used is reported. */
  syslog?: Syslog;
}

/** The cross-process store described above. */
export function fileLookupGuard(options: FileLookupGuardOptions = {}): LookupGuard {
  const dir = options.dir ?? LOOKUP_STATE_DIR;
  const policy = options.policy ?? LOOKUP_GUARD_POLICY;
  const now = options.now ?? Date.now;
  const uid = process.geteuid?.() ?? -1;
  let usable: Promise<boolean> | undefined;
  let nowMs = 0;
  let current: NameState | undefined;

  const warn = (message: string) =>
    options.syslog?.log('warning', `lookup cache ${dir} not used (live IAM lookups, no per-name limit): ${message}`);

  async function dirUsable(): Promise<boolean> {
    try {
      const st = await fs.lstat(dir);
      if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
        warn(
          `it must be a directory owned by uid ${uid} with mode 0700 (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)})`,
        );
        return false;
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') warn((error as Error).message);
      return false; // not created yet (before the first sync after boot): nothing to say each time
    }
  }

  async function read(file: string): Promise<NameState | undefined> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return undefined; // missing, a symlink (ELOOP) or unreadable: no state
    }
    try {
      const st = await handle.stat();
      if (!st.isFile() || st.uid !== uid || (st.mode & 0o077) !== 0 || st.size > 65_536) return undefined;
      return parseNameState(await handle.readFile('utf8'), nowMs, policy);
    } finally {
      await handle.close();
    }
  }

  async function write(name: string, state: NameState): Promise<void> {
    const file = path.join(dir, `${name}.json`);
    const entries = await fs.readdir(dir);
    if (entries.length >= policy.maxNames && !entries.includes(`${name}.json`)) {
      // Bounded: drop the files whose every entry has expired; if none, this name goes uncached.
      const horizon = nowMs - Math.max(policy.listedTtlMs, policy.burst * policy.refillIntervalMs);
      for (const entry of entries) {
        const st = await fs.lstat(path.join(dir, entry)).catch(() => undefined);
        if (st && st.mtimeMs < horizon) await fs.rm(path.join(dir, entry), { force: true });
      }
      if ((await fs.readdir(dir)).length >= policy.maxNames) return;
    }
    // Not fsynced: a lost update only forgets a little rate-limit state, and this runs on every lookup.
    writeFileAtomic(file, `${JSON.stringify(state)}\n`, { mode: 0o600, durable: false });
  }

  return {
    async before(name, fingerprint) {
      current = undefined;
      usable ??= dirUsable();
      if (!(await usable)) return;
      nowMs = now();
      const state = refilled(await read(path.join(dir, `${name}.json`)), nowMs, policy);
      if (
        fingerprint !== undefined &&
        nowMs - state.listedAtMs < policy.listedTtlMs &&
        !state.listed.includes(fingerprint)
      ) {
        throw new AwsError(
          'NO_SUCH_KEY',
          `the offered key is not among the ${state.listed.length} IAM listed for ${name} ${Math.round((nowMs - state.listedAtMs) / 1000)} s ago; refused without an IAM call`,
          { details: { cached: true } },
        );
      }
      if (state.tokens < 1) {
        throw new AwsError(
          'THROTTLED',
          `too many key lookups for ${name} (limit ${policy.burst}, then 1 every ${policy.refillIntervalMs / 1000} s); refused without an IAM call`,
          { details: { rateLimited: true } },
        );
      }
      current = { ...state, tokens: state.tokens - 1 };
      await write(name, current);
    },
    async after(name, outcome) {
      if (!current) return;
      let listed: string[];
      if ('fingerprints' in outcome) listed = outcome.fingerprints;
      else if (isKeymakerError(outcome.error) && REFUSALS_LISTING_NOTHING.includes(outcome.error.code)) listed = [];
      else return; // a network error or a deadline says nothing about the keys
      await write(name, { ...current, listed, listedAtMs: now() });
    },
  };
}

/**
 * Creates the store directory for the lookup user (run as root by the sync and the PAM hook);
 * an existing one is left as it is (the lookup refuses to use it if it is not right).
 */
export async function ensureLookupStateDir(
  owner: () => Promise<{ uid: number; gid: number } | undefined>,
  dir = LOOKUP_STATE_DIR,
): Promise<boolean> {
  if (
    await fs.lstat(dir).then(
      () => true,
      () => false,
    )
  )
    return false;
  const who = await owner();
  if (!who) return false;
  try {
    await fs.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  await fs.chown(dir, who.uid, who.gid);
  return true;
}
