import { constants, promises as fs } from 'node:fs';
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { AccessRefusedError, HostError, isKeymakerError, isValidLinuxName, type ErrorCode } from '@keymaker/core';
import { acquireShortLock } from './lock';

/**
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
 *  - a token bucket over IAM lookups from the hook, shared by every hook
 *    process on the host (pam_exec spawns one per attempt): `burst` (20)
 *    lookups at once, then one more every `refillIntervalMs` (3 s). With the
 *    bucket empty the hook refuses without an IAM call (and logs it).
 *
 * So N attempts with random names over T seconds cost at most
 * burst + T/3 lookups: 1,000 names in one minute cost at most 40 lookups,
 * each a handful of IAM/STS requests (MAX_REQUESTS_PER_LOOKUP).
 *
 * State lives in a root-only file (/run/keymaker/pam-state.json: directory
 * root 0700, file root 0600, gone at reboot), changed under a lock and
 * replaced by an atomic rename. A missing file is a fresh start; a corrupt
 * or foreign-owned one is treated as an EMPTY bucket (never as permission):
 * the negative cache only ever refuses, and an empty bucket refills on its own.
 * An administrator can clear it with `rm /run/keymaker/pam-state.json`.
 */
export interface PamGuardPolicy {
  burst: number;
  refillIntervalMs: number;
  negativeTtlMs: number;
  /** Bound on remembered names (oldest dropped first); keeps the file small. */
  maxRemembered: number;
}

export const PAM_GUARD_POLICY: PamGuardPolicy = {
  burst: 20,
  refillIntervalMs: 3000,
  negativeTtlMs: 10 * 60_000,
  maxRemembered: 2000,
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

export interface GuardState {
  version: 1;
  /** Tokens left (fractional while refilling). */
  tokens: number;
  refilledAtMs: number;
  /** name -> the refusal IAM gave and until when it is remembered. */
  refused: Record<string, { code: ErrorCode; untilMs: number }>;
}

export type Admission =
  | { kind: 'admit' }
  | { kind: 'remembered'; code: ErrorCode; remainingMs: number }
  | { kind: 'rate-limited'; retryInMs: number };

export function freshGuardState(nowMs: number, policy: PamGuardPolicy = PAM_GUARD_POLICY): GuardState {
  return { version: 1, tokens: policy.burst, refilledAtMs: nowMs, refused: {} };
}

/** What a corrupt state file counts as: no tokens left (they refill), nothing remembered. */
export function emptyGuardState(nowMs: number): GuardState {
  return { version: 1, tokens: 0, refilledAtMs: nowMs, refused: {} };
}

/** Parses the state file strictly; undefined text = no file yet; anything malformed = emptyGuardState. */
export function parseGuardState(text: string | undefined, nowMs: number, policy: PamGuardPolicy = PAM_GUARD_POLICY): GuardState {
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
    s.version === 1 &&
    typeof s.tokens === 'number' &&
    Number.isFinite(s.tokens) &&
    s.tokens >= 0 &&
    typeof s.refilledAtMs === 'number' &&
    Number.isFinite(s.refilledAtMs) &&
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
  return { version: 1, tokens: Math.min(s.tokens!, policy.burst), refilledAtMs: Math.min(s.refilledAtMs!, nowMs), refused };
}

export function serializeGuardState(state: GuardState): string {
  return `${JSON.stringify(state)}\n`;
}

function refill(state: GuardState, nowMs: number, policy: PamGuardPolicy): GuardState {
  const elapsed = Math.max(0, nowMs - state.refilledAtMs);
  return { ...state, tokens: Math.min(policy.burst, state.tokens + elapsed / policy.refillIntervalMs), refilledAtMs: nowMs };
}

function pruned(refused: GuardState['refused'], nowMs: number): GuardState['refused'] {
  const out: GuardState['refused'] = {};
  for (const [name, entry] of Object.entries(refused)) if (entry.untilMs > nowMs) out[name] = entry;
  return out;
}

/** Decides whether the hook may ask IAM about `name` now; consumes a token when it may. */
export function admit(state: GuardState, name: string, nowMs: number, policy: PamGuardPolicy = PAM_GUARD_POLICY): { state: GuardState; admission: Admission } {
  const refused = pruned(state.refused, nowMs);
  const remembered = Object.prototype.hasOwnProperty.call(refused, name) ? refused[name] : undefined;
  const next = refill({ ...state, refused }, nowMs, policy);
  if (remembered) return { state: next, admission: { kind: 'remembered', code: remembered.code, remainingMs: remembered.untilMs - nowMs } };
  if (next.tokens < 1) {
    return { state: next, admission: { kind: 'rate-limited', retryInMs: Math.ceil((1 - next.tokens) * policy.refillIntervalMs) } };
  }
  return { state: { ...next, tokens: next.tokens - 1 }, admission: { kind: 'admit' } };
}

/** Remembers IAM's refusal of `name` (only the refusals in REMEMBERED_REFUSALS); bounded in size. */
export function rememberRefusal(state: GuardState, name: string, code: ErrorCode, nowMs: number, policy: PamGuardPolicy = PAM_GUARD_POLICY): GuardState {
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
    if (!st.isFile() || st.uid !== (process.getuid?.() ?? -1) || (st.mode & 0o077) !== 0 || st.size > 1_000_000) return null;
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

async function writeStateFile(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
  const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(tmp, file);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
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
      const lock = await acquireShortLock(path.join(dir, 'pam-state.lock'), { waitMs: options.lockWaitMs ?? 3000, maxHoldMs: 10_000 });
      try {
        const text = await readStateFile(file);
        const nowMs = now();
        const current = text === null ? emptyGuardState(nowMs) : parseGuardState(text, nowMs, policy);
        const { state, result } = change(current, nowMs);
        await writeStateFile(file, serializeGuardState(state));
        return result;
      } finally {
        await lock.release();
      }
    },
  };
}

/** An in-memory store (unit tests, one process). */
export function memoryGuardStore(options: { policy?: PamGuardPolicy; now?: () => number } = {}): GuardStore & { state?: GuardState } {
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
  admit(name: string): Promise<void>;
  /** Reports how the lookup ended: a refusal to remember, or success (forgets the name). */
  settle(name: string, error: unknown): Promise<void>;
}

export function loginGuard(store: GuardStore, policy: PamGuardPolicy = PAM_GUARD_POLICY): LoginGuard {
  return {
    async admit(name) {
      const admission = await store.update((state, nowMs) => {
        const r = admit(state, name, nowMs, policy);
        return { state: r.state, result: r.admission };
      });
      if (admission.kind === 'remembered') {
        throw new AccessRefusedError(
          admission.code,
          `${name} was refused by IAM (${admission.code}) within the last ${Math.round(policy.negativeTtlMs / 60_000)} minutes; refused again without an IAM call (remembered ${Math.ceil(admission.remainingMs / 1000)} s more)`,
          { details: { remembered: true } },
        );
      }
      if (admission.kind === 'rate-limited') {
        throw new HostError(
          'THROTTLED',
          `too many account-creation lookups from the login hook (limit ${policy.burst}, then 1 every ${policy.refillIntervalMs / 1000} s); refused without an IAM call, try again in ${Math.ceil(admission.retryInMs / 1000)} s`,
          { details: { rateLimited: true } },
        );
      }
    },
    async settle(name, error) {
      if (error === undefined) {
        await store.update((state) => ({ state: forgetName(state, name), result: undefined }));
      } else if (isKeymakerError(error) && REMEMBERED_REFUSALS.includes(error.code)) {
        await store.update((state, nowMs) => ({ state: rememberRefusal(state, name, error.code, nowMs, policy), result: undefined }));
      }
    },
  };
}
