// The caches behind the agent's AuthorizedKeysCommand answer (keys-server.ts). Pure: no I/O, time
// from an injected clock.
//
//  - KeyBodyCache: validated key bodies by (IAM user, SSHPublicKeyId). IAM never changes the body of
//    a key ID (only its status), so an entry never goes stale; it is only evicted (bounded LRU). The
//    status is never cached here: every login reads it live from ListSSHPublicKeys. Keyed by the
//    user too, so a key ID that some answer lists for another user can never bring this user's body.
//  - AnswerCache: a login's state (which key IDs are active, the group check passed, or the refusal)
//    for a few seconds, keyed by Linux user, so sshd's second call for the same login (it runs the
//    command once to test the offered key and once to verify the signature) costs no IAM request.
//    Failures are never cached, and a failure drops the entry: doubt always goes back to IAM.
import type { SshPublicKey } from '@keymaker/core';

/** Milliseconds from a monotonic source (tests pass a fake). */
export interface Clock {
  now(): number;
}

export const monotonicClock: Clock = { now: () => performance.now() };

export const DEFAULT_KEY_BODY_ENTRIES = 4096;
export const DEFAULT_ANSWER_TTL_MS = 5000;
export const DEFAULT_ANSWER_ENTRIES = 1024;

/** A bounded map in least-recently-used order (a Map keeps insertion order; a hit re-inserts). */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly maxEntries: number) {
    if (!(Number.isInteger(maxEntries) && maxEntries > 0))
      throw new RangeError('maxEntries must be a positive integer');
  }

  get(key: K): V | undefined {
    if (!this.map.has(key)) return undefined;
    const value = this.map.get(key) as V;
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  /** Without touching the LRU order. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

function bodyKey(iamUserName: string, keyId: string): string {
  // IAM user names are case-insensitive; NUL appears in neither name nor ID.
  return `${iamUserName.toLowerCase()}\0${keyId}`;
}

/** Validated key bodies by (IAM user, key ID); only keys that passed parseSshPublicKey go in. */
export class KeyBodyCache {
  private readonly lru: LruMap<string, SshPublicKey>;

  constructor(maxEntries = DEFAULT_KEY_BODY_ENTRIES) {
    this.lru = new LruMap(maxEntries);
  }

  get(iamUserName: string, keyId: string): SshPublicKey | undefined {
    return this.lru.get(bodyKey(iamUserName, keyId));
  }

  set(iamUserName: string, keyId: string, key: SshPublicKey): void {
    this.lru.set(bodyKey(iamUserName, keyId), key);
  }

  delete(iamUserName: string, keyId: string): void {
    this.lru.delete(bodyKey(iamUserName, keyId));
  }

  clear(): void {
    this.lru.clear();
  }

  get size(): number {
    return this.lru.size;
  }
}

/** What one login learned from IAM: the active key IDs (group check passed), or a refusal. */
export type LoginState =
  { kind: 'allowed'; iamUserName: string; activeKeyIds: readonly string[] } | { kind: 'refused'; code: string };

/** Short-lived per-login state by Linux user name; expired entries are never returned. */
export class AnswerCache {
  private readonly lru: LruMap<string, { state: LoginState; expires: number }>;

  constructor(
    readonly ttlMs = DEFAULT_ANSWER_TTL_MS,
    private readonly clock: Clock = monotonicClock,
    maxEntries = DEFAULT_ANSWER_ENTRIES,
  ) {
    if (!(ttlMs >= 0)) throw new RangeError('ttlMs must not be negative');
    this.lru = new LruMap(maxEntries);
  }

  get(user: string): LoginState | undefined {
    const entry = this.lru.peek(user);
    if (!entry) return undefined;
    if (this.clock.now() >= entry.expires) {
      this.lru.delete(user);
      return undefined;
    }
    return entry.state;
  }

  set(user: string, state: LoginState): void {
    if (this.ttlMs === 0) return;
    this.lru.set(user, { state, expires: this.clock.now() + this.ttlMs });
  }

  /** After any failure for this user: the next call asks IAM again. */
  invalidate(user: string): void {
    this.lru.delete(user);
  }

  clear(): void {
    this.lru.clear();
  }

  get size(): number {
    return this.lru.size;
  }
}
