/*
 * Compat mode's key bodies by (IAM user, SSH key ID), login to login (issue 14). IAM never changes the body of
 * an SSHPublicKeyId, only its status, so a body stored once stands for GetSSHPublicKey at every later login;
 * the lookup still lists the keys live, and only an ID that list names as Active takes its stored body
 * (core's IamDirectory.authorizedKeys knownBody), so deactivation and deletion stay immediate.
 *
 * One small file per IAM user in the cache directory, named by a hash of the lowercased name (cache keys are
 * [a-z0-9-]), written only by root (the session hook, commands/host-commands.ts storeKeyBodiesCommand) and read
 * by the unprivileged lookup with FileCacheStore's trusted-file rules (root-owned directory and file, not group-
 * or world-writable, O_NOFOLLOW, 64 KiB). The file is data, never trusted blindly: it must name the same IAM
 * user, and every body is parsed again with parseSshPublicKey; anything else in it is ignored.
 */
import { createHash } from 'node:crypto';
import { parseSshPublicKey, type CacheStore, type SshPublicKey } from '@keymaker/core';

const VERSION = 1;
/** IAM's SSHPublicKeyId: APKA plus upper-case letters and digits. */
const KEY_ID = /^[A-Z0-9]{16,128}$/;
/** IAM allows 5 keys per user; a few more leave room for a quota raise and stay far below the file cap. */
const MAX_BODIES = 16;

/** The cache key of an IAM user's bodies: IAM names are case-insensitive, so the hash is of the lowercased name. */
export function keyBodiesCacheKey(iamUserName: string): string {
  return `keys-${createHash('sha256').update(iamUserName.toLowerCase()).digest('hex').slice(0, 40)}`;
}

interface StoredBodies {
  v: number;
  iamUserName: string;
  bodies: Record<string, string>;
}

/** The valid bodies stored for this IAM user, by key ID; a missing, untrusted or foreign file is an empty map. */
export async function readKeyBodies(store: CacheStore, iamUserName: string): Promise<Map<string, SshPublicKey>> {
  const bodies = new Map<string, SshPublicKey>();
  let value: unknown;
  try {
    value = await store.get(keyBodiesCacheKey(iamUserName));
  } catch {
    return bodies;
  }
  if (typeof value !== 'object' || value === null) return bodies;
  const stored = value as Partial<StoredBodies>;
  if (stored.v !== VERSION || typeof stored.iamUserName !== 'string') return bodies;
  // The file of another user (a hash collision, a copied file) never lends its bodies.
  if (stored.iamUserName.toLowerCase() !== iamUserName.toLowerCase()) return bodies;
  if (typeof stored.bodies !== 'object' || stored.bodies === null || Array.isArray(stored.bodies)) return bodies;
  for (const [keyId, body] of Object.entries(stored.bodies).slice(0, MAX_BODIES)) {
    if (!KEY_ID.test(keyId) || typeof body !== 'string') continue;
    const parsed = parseSshPublicKey(body);
    if (parsed.ok) bodies.set(keyId, parsed.key);
  }
  return bodies;
}

/** Root only (FileCacheStore writes nothing otherwise): replaces the user's file with these bodies. */
export async function writeKeyBodies(
  store: CacheStore,
  iamUserName: string,
  bodies: ReadonlyMap<string, SshPublicKey>,
): Promise<void> {
  const entries = [...bodies].filter(([keyId]) => KEY_ID.test(keyId)).slice(0, MAX_BODIES);
  const value: StoredBodies = {
    v: VERSION,
    iamUserName,
    bodies: Object.fromEntries(entries.map(([keyId, key]) => [keyId, key.line])),
  };
  await store.set(keyBodiesCacheKey(iamUserName), value);
}

/**
 * What the root writer keeps after a lookup: the stored bodies of the IDs that lookup found Active (`used`)
 * and the ones it fetched. Bodies of IDs no longer listed as Active drop out, so the file never grows.
 */
export function nextKeyBodies(
  used: ReadonlyMap<string, SshPublicKey>,
  fetched: ReadonlyArray<{ keyId: string; key: SshPublicKey }>,
): Map<string, SshPublicKey> {
  const next = new Map(used);
  for (const { keyId, key } of fetched) next.set(keyId, key);
  return next;
}
