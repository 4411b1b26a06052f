/*
 * UID/GID derivation from an IAM unique ID (user AIDA..., group AGPA...).
 *
 * legacy: keymaker 1.x, bit for bit: 2000 + (last two bytes of SHA-256, read
 *   little-endian) // 2, i.e. 2000..34767. Only 32,768 values: with 1,000 users
 *   a collision is all but certain.
 *
 * wide (default): 1879048192..2147352575 (0x70000000..0x7FFDFFFF), 268,304,384
 *   values taken from the first 6 bytes of SHA-256. The range stays below 2^31
 *   (safe for signed 32-bit uid_t users) and clear of system accounts (<1000),
 *   regular accounts (1000-59999), systemd's homed/greeter/dynamic users
 *   (60001-65519), nobody (65534), 16-bit -1 (65535), systemd-nspawn's
 *   container ranges (524288-1879048191), systemd's foreign UID range
 *   (0x7FFE0000-0x7FFEFFFF) and everything >= 2^31.
 *   Chance that any two of n users share a UID (birthday bound):
 *   1,000 users: 0.19%; 10,000 users: 17%. (legacy: 1,000 users: ~100%.)
 *   A collision is detected at account creation and refused, never merged.
 */
import { createHash } from 'node:crypto';

export const UID_SCHEMES = ['wide', 'legacy'] as const;
export type UidScheme = (typeof UID_SCHEMES)[number];

export interface UidRange {
  min: number;
  max: number;
}

export const UID_RANGES: Record<UidScheme, UidRange> = {
  legacy: { min: 2000, max: 2000 + 32767 },
  wide: { min: 0x70000000, max: 0x7ffdffff },
};

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function legacyUnixId(iamUniqueId: string): number {
  const digest = sha256(iamUniqueId);
  return 2000 + Math.floor(digest.readUInt16LE(digest.length - 2) / 2);
}

export function wideUnixId(iamUniqueId: string): number {
  const { min, max } = UID_RANGES.wide;
  // 48 bits mod ~2^28 leaves a bias below 1e-6: negligible.
  return min + (sha256(iamUniqueId).readUIntBE(0, 6) % (max - min + 1));
}

/** The UID (for a user ID) or GID (for a group ID) that keymaker assigns. */
export function unixIdFor(iamUniqueId: string, scheme: UidScheme): number {
  if (typeof iamUniqueId !== 'string' || iamUniqueId.length === 0) {
    throw new TypeError('IAM unique ID must be a non-empty string');
  }
  return scheme === 'legacy' ? legacyUnixId(iamUniqueId) : wideUnixId(iamUniqueId);
}

export function isInManagedRange(id: number, scheme: UidScheme): boolean {
  const { min, max } = UID_RANGES[scheme];
  return Number.isInteger(id) && id >= min && id <= max;
}

/** Probability that at least two of n IDs collide in a range of the given size. */
export function collisionProbability(n: number, rangeSize: number): number {
  return 1 - Math.exp((-n * (n - 1)) / (2 * rangeSize));
}
