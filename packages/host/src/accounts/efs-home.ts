/*
 * Home directories on a share that every host mounts (EFS, issue 15; facts in shared/notes/host-identity.md).
 * A home made wrong there is wrong on every host, so:
 *   - nothing is made, and the login is refused, while the share is not mounted (a local home would split the
 *     user's files between hosts): the base's device must differ from its parent's;
 *   - an existing home is used only if it is a real directory (lstat: a symlink is refused) owned by the user's
 *     derived UID; anything else is refused and logged, never "repaired" (no chown, least of all chown -R);
 *   - a new home is one atomic mkdir, and the skeleton is copied only into the directory that mkdir just made;
 *   - it is made AS THE USER (a child with her uid/gid, setpriv): under root squash root's mkdir would make a
 *     home owned by nobody, broken on every host. Only where users cannot write the base does root make it, and
 *     only when the directory it made is root's (no squash), then hands it over with one chown of that directory;
 *   - two hosts racing: the loser's mkdir gets EEXIST and re-checks the winner's directory like any other;
 *   - a second IAM user whose derived UID already owns another home on the share (a UID collision would share
 *     her files across the fleet) gets no home: the base is listed before a home is made.
 */
import * as path from 'node:path';
import { HostError } from '@keymaker/core';
import type { PathInfo } from '../system/host-system';
import { isMountPoint } from '../system/mounts';

export interface EfsHomeAccount {
  name: string;
  uid: number;
  gid: number;
  /** From the passwd entry: only a home directly below the base is the share's business. */
  home: string;
}

/** How a child process creating the home ended. */
export type CreateOutcome =
  | { result: 'created'; skeletonProblem?: string }
  | { result: 'exists' }
  | { result: 'denied'; detail: string }
  | { result: 'failed'; detail: string };

export interface EfsHomeIo {
  lstat(p: string): PathInfo | undefined;
  stat(p: string): PathInfo | undefined;
  readdir(p: string): string[] | undefined;
  /** As uid:gid: mkdir(home, 0700) once, then the skeleton into it (only if that mkdir made it). */
  createAsUser(home: string, uid: number, gid: number, skel: string): CreateOutcome;
  /** As root: mkdir(home, 0700) once; 'created' only when it did. */
  mkdirAsRoot(home: string): CreateOutcome;
  /** chown of that one directory (never recursive). */
  chown(p: string, uid: number, gid: number): void;
  rmdir(p: string): void;
  /** As uid:gid: the skeleton into a directory root has just made and handed over. */
  copySkeletonAsUser(home: string, uid: number, gid: number, skel: string): string | undefined;
}

export type EfsHomeVerdict =
  { kind: 'not-on-share' } | { kind: 'exists' } | { kind: 'created'; by: 'user' | 'root'; skeletonProblem?: string };

export interface EfsHomeOptions {
  base: string;
  skel?: string;
}

/** A refusal: the login must not go on. The message names the path and the fix; it goes to authpriv. */
function refuse(message: string, details: Record<string, unknown> = {}): HostError {
  return new HostError('EFS_HOME_REFUSED', message, { details });
}

/** Throws when a managed login must be refused because the share is not mounted. */
export function assertShareMounted(io: Pick<EfsHomeIo, 'stat'>, base: string): void {
  if (!isMountPoint((p) => io.stat(p), base))
    throw refuse(
      `the EFS home share is not mounted on ${base}: managed logins are refused until it is (mount ${base}, or systemctl start its mount unit)`,
      { base },
    );
}

/** Whether an existing path is the user's home: a real directory (not a symlink) owned by her derived UID. */
function checkExisting(info: PathInfo, account: EfsHomeAccount): void {
  if (info.type !== 'dir')
    throw refuse(
      `${account.home} is ${info.type === 'symlink' ? 'a symlink' : 'not a directory'}, not ${account.name}'s home: login refused; remove it (from a host with root access to the share) so the next login makes the home`,
      { home: account.home, type: info.type },
    );
  if (info.uid !== account.uid)
    throw refuse(
      `${account.home} is owned by uid ${info.uid}, not ${account.name}'s uid ${account.uid}: login refused (a UID collision or a directory somebody else made); move it away from a host with root access to the share`,
      { home: account.home, owner: info.uid, uid: account.uid },
    );
}

/** Another home on the share owned by this UID: two IAM users would share files fleet-wide. */
function assertNoCollision(io: EfsHomeIo, base: string, account: EfsHomeAccount): void {
  const names = io.readdir(base);
  if (!names)
    throw refuse(
      `cannot list ${base} to check that uid ${account.uid} owns no other home there: login refused (the share's directory must be readable, mode 1777)`,
      { base },
    );
  for (const other of names) {
    if (other === account.name) continue;
    const info = io.lstat(path.posix.join(base, other));
    if (info?.type === 'dir' && info.uid === account.uid)
      throw refuse(
        `uid ${account.uid} of ${account.name} already owns ${path.posix.join(base, other)} on the EFS share (two IAM users with one derived UID): no home made, login refused; use keymaker_uid_scheme=wide, and rename or remove one of the users`,
        { uid: account.uid, holder: other },
      );
  }
}

/**
 * The home of a user whose home is on the share: checked, or made. Throws EFS_HOME_REFUSED (the login must
 * fail) for every case the module comment lists; 'not-on-share' for a home elsewhere (a local account).
 */
export function ensureEfsHome(io: EfsHomeIo, account: EfsHomeAccount, options: EfsHomeOptions): EfsHomeVerdict {
  const base = path.posix.normalize(options.base);
  if (path.posix.dirname(path.posix.normalize(account.home)) !== base) return { kind: 'not-on-share' };
  if (path.posix.basename(account.home) !== account.name)
    throw refuse(`${account.home} is not ${base}/${account.name}: login refused`, { home: account.home });
  assertShareMounted(io, base);
  const existing = io.lstat(account.home);
  if (existing) {
    checkExisting(existing, account);
    return { kind: 'exists' };
  }
  assertNoCollision(io, base, account);
  const skel = options.skel ?? '/etc/skel';

  const made = io.createAsUser(account.home, account.uid, account.gid, skel);
  if (made.result === 'created') return { kind: 'created', by: 'user', skeletonProblem: made.skeletonProblem };
  if (made.result === 'exists') return recheck(io, account);
  if (made.result === 'failed')
    throw refuse(`creating ${account.home} as ${account.name} failed: ${made.detail}`, { home: account.home });

  // Users cannot write the base: root makes the home only where root is root on the share (no root squash).
  const byRoot = io.mkdirAsRoot(account.home);
  if (byRoot.result === 'exists') return recheck(io, account);
  if (byRoot.result !== 'created')
    throw refuse(
      `cannot create ${account.home}: ${made.detail} as ${account.name}, and ${byRoot.detail} as root (root squash?): make ${base} on the share mode 1777 from a host with root access`,
      { home: account.home },
    );
  const info = io.lstat(account.home);
  if (info?.type !== 'dir' || info.uid !== 0) {
    // Squashed: a directory owned by nobody would break the user on every host. Take it back.
    try {
      io.rmdir(account.home);
    } catch {
      /* named in the refusal */
    }
    throw refuse(
      `root is squashed on the share (its mkdir made a directory owned by uid ${info?.uid ?? '?'}), and ${account.name} cannot write ${base}: make ${base} mode 1777 from a host with root access; removed the directory again`,
      { home: account.home },
    );
  }
  io.chown(account.home, account.uid, account.gid);
  const skeletonProblem = io.copySkeletonAsUser(account.home, account.uid, account.gid, skel);
  return { kind: 'created', by: 'root', skeletonProblem };
}

/** Another host (or login) made it first: it must pass the same checks as any existing home. */
function recheck(io: EfsHomeIo, account: EfsHomeAccount): EfsHomeVerdict {
  const info = io.lstat(account.home);
  if (!info) throw refuse(`${account.home} appeared and vanished while it was being made: login refused, try again`);
  checkExisting(info, account);
  return { kind: 'exists' };
}
