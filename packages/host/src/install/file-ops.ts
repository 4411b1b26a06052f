// The file operations install and uninstall share: the install state on disk, writes that keep a
// symlinked sshd_config or pam.d/sshd a symlink, and owner names resolved to ids.
import { HostError } from '@keymaker/core';
import type { FileState, HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import { journalPath, parseJournal, serializeJournal, type InstallJournal } from './journal';

export function requireRoot(sys: HostSystem, what: string): void {
  if (sys.getuid() !== 0)
    throw new HostError(
      'NOT_ROOT',
      `keymaker ${what} must run as root (it changes sshd, PAM and system files); run it with sudo`,
    );
}

export function readJournal(sys: HostSystem, paths: HostPaths): { journal?: InstallJournal; state?: FileState } {
  const state = sys.readFile(journalPath(paths));
  if (!state) return {};
  return { journal: parseJournal(state.content.toString('utf8'), journalPath(paths)), state };
}

export function writeJournal(sys: HostSystem, paths: HostPaths, journal: InstallJournal): void {
  sys.writeFileAtomic(journalPath(paths), serializeJournal(journal), 0o600, 0, 0);
}

export function restoreState(sys: HostSystem, p: string, state: FileState | undefined): void {
  if (state) sys.writeFileAtomic(p, state.content, state.mode, state.uid, state.gid);
  else sys.removeFile(p);
}

/**
 * Where to write sshd_config or pam.d/sshd. A symlink stays a symlink: the
 * write goes (atomically, in the target's own directory) to the regular file it
 * leads to. A link that leads nowhere, or to something that is not a regular
 * file, is refused before anything changes.
 */
export function writeThrough(sys: HostSystem, p: string): string {
  if (sys.lstat(p)?.type !== 'symlink') return p;
  let target: string | undefined;
  try {
    target = sys.realpath(p);
  } catch {
    /* dangling */
  }
  if (!target || sys.lstat(target)?.type !== 'file') {
    throw new HostError(
      'UNSUPPORTED_HOST',
      `refusing to install: ${p} is a symlink that does not lead to a regular file${target ? ` (${target})` : ''}; point it at the real file, or replace it with one, then run install again`,
    );
  }
  return target;
}

/** The administrator's files keymaker edits (its lines in them); every other file in the journal is keymaker's own. */
export const editedPaths = (paths: HostPaths) => [paths.sshdConfig, paths.pamSshd, paths.sudoConf];

export function ids(sys: HostSystem, owner: string, group: string): { uid: number; gid: number } {
  const uid = /^\d+$/.test(owner) ? Number(owner) : owner === 'root' ? 0 : sys.userIds(owner)?.uid;
  const gid = /^\d+$/.test(group) ? Number(group) : group === 'root' ? 0 : sys.groupId(group);
  if (uid === undefined || gid === undefined)
    throw new HostError('SYSTEM_COMMAND_FAILED', `no such user or group ${owner}:${group}`);
  return { uid, gid };
}
