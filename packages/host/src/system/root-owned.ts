// The root-owned-path rule, once: a file that root runs or reads to decide who logs in, and every
// directory above it, must be owned by root and not group- or world-writable, or a user other than
// root could change or swap it. It is sshd's own rule for an AuthorizedKeysCommand (so breaking it
// also stops logins), and keymaker applies it in three places, all built on `rootOwnedProblem`:
//  - install (`safePathProblem`): everything sshd, PAM and the schedule will run or load, on its
//    real path, before anything is installed, so the failure is a clear message instead of logins
//    that silently stop working; the lookup user must also be able to read or run it;
//  - the runtime (`assertTrustedFile`): the host config and the AWS files it names, each time a
//    command that runs as root (PAM hook, sync) or the lookup reads them;
//  - the login cache (`isRootOwned`): a cache file or directory that breaks the rule is a miss.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HostError } from '@keymaker/core';
import type { HostSystem } from './host-system';

/** Owner and permission bits of one path (mode & 0o7777 or the full st_mode: only the low bits are read). */
export interface Ownership {
  uid: number;
  mode: number;
}

export type RootOwnedProblem = { kind: 'owner'; uid: number } | { kind: 'world-writable' } | { kind: 'group-writable' };

export function rootOwnedProblem(st: Ownership): RootOwnedProblem | undefined {
  if (st.uid !== 0) return { kind: 'owner', uid: st.uid };
  if (st.mode & 0o002) return { kind: 'world-writable' };
  if (st.mode & 0o020) return { kind: 'group-writable' };
  return undefined;
}

export function isRootOwned(st: Ownership): boolean {
  return rootOwnedProblem(st) === undefined;
}

/** "is owned by uid 1000, not root", "is group-writable"... */
export function describeRootOwnedProblem(problem: RootOwnedProblem): string {
  return problem.kind === 'owner' ? `is owned by uid ${problem.uid}, not root` : `is ${problem.kind}`;
}

/** The directories above p, nearest first, up to /. */
export function directoriesAbove(p: string): string[] {
  const out: string[] = [];
  for (let dir = path.dirname(p); ; dir = path.dirname(dir)) {
    out.push(dir);
    if (dir === path.dirname(dir)) return out;
  }
}

// ---- install: sshd's safe-path rule for what will be run or loaded --------------------------------

/** Something install puts where sshd, PAM or the schedule will run or load it. */
export interface SafePathTarget {
  path: string;
  /** What it is, for the message: "the Node binary", "the host bundle"... */
  what: string;
  /** The lookup user (not root) must be able to read/execute it: others need r/x on the file and x on every directory. */
  needOthers: 'read' | 'exec' | 'none';
}

export interface SafePathProblem {
  path: string;
  message: string;
}

/**
 * The first problem on the way from / to the real path of target, or
 * undefined. A path that does not exist yet is checked as far as it exists
 * (install creates the rest as root, 0755).
 */
export function safePathProblem(sys: HostSystem, target: SafePathTarget): SafePathProblem | undefined {
  let real: string;
  if (sys.lstat(target.path)) {
    real = sys.realpath(target.path);
  } else {
    // Resolve the deepest existing ancestor; the rest will be created by install.
    let existing = path.dirname(target.path);
    while (!sys.lstat(existing)) existing = path.dirname(existing);
    real = path.join(sys.realpath(existing), path.relative(existing, target.path));
  }
  const via = real === target.path ? '' : ` (real path of ${target.path})`;
  for (const component of [...directoriesAbove(real).reverse(), real]) {
    const st = sys.stat(component);
    if (!st) break;
    const isTarget = component === real;
    const subject = isTarget
      ? `${target.what} ${component}${via}`
      : `${component}, a parent directory of ${target.what} ${real}${via},`;
    const moveHint = 'install Node and keymaker under a root-owned directory such as /usr/local';
    const problem = rootOwnedProblem(st);
    if (problem?.kind === 'owner') {
      return {
        path: component,
        message: `refusing to install: ${subject} ${describeRootOwnedProblem(problem)}, and sshd refuses to run commands below it (its safe-path rule); ${moveHint}, or fix with chown root ${component}`,
      };
    }
    if (problem) {
      const sticky = st.type === 'dir' && (st.mode & 0o1000) !== 0;
      const fix = sticky ? moveHint : `${moveHint}, or fix with chmod go-w ${component}`;
      return {
        path: component,
        message: `refusing to install: ${subject} ${describeRootOwnedProblem(problem)}, and sshd refuses to run commands below it (its safe-path rule); ${fix}`,
      };
    }
    const others = st.mode & 0o007;
    const needed =
      target.needOthers === 'none'
        ? 0
        : isTarget
          ? target.needOthers === 'exec'
            ? 0o005
            : 0o004
          : st.type === 'dir'
            ? 0o001
            : 0;
    if ((others & needed) !== needed) {
      return {
        path: component,
        message: `refusing to install: ${subject} is not ${isTarget ? (target.needOthers === 'exec' ? 'readable and executable' : 'readable') : 'searchable'} by other users (mode ${st.mode.toString(8)}), but the lookup runs as an unprivileged user; ${moveHint}, or fix with chmod o+${isTarget ? (target.needOthers === 'exec' ? 'rx' : 'r') : 'x'} ${component}`,
      };
    }
  }
  return undefined;
}

export function assertSafePaths(sys: HostSystem, targets: SafePathTarget[]): void {
  for (const target of targets) {
    const problem = safePathProblem(sys, target);
    if (problem) throw new HostError('UNSAFE_PATH', problem.message, { details: { path: problem.path } });
  }
}

// ---- runtime: the files that decide who logs in ---------------------------------------------------

/** What assertTrustedFile needs to know of a path (lstat: a symlink is not followed). */
export interface PathStat {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  uid: number;
  mode: number;
}

export type StatPath = (p: string) => Promise<PathStat | undefined>;

export const lstatPath: StatPath = async (p) => {
  try {
    const st = await fs.lstat(p);
    return {
      isFile: st.isFile(),
      isDirectory: st.isDirectory(),
      isSymlink: st.isSymbolicLink(),
      uid: st.uid,
      mode: st.mode & 0o7777,
    };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
};

export interface TrustedFile {
  path: string;
  /** Shown in the fix: the mode and group the file should have. */
  fixMode: string;
  fixOwner: string;
}

/**
 * Refuses a file another user could change (one-line error naming the file
 * and the fix). A missing file passes: the caller decides what missing means.
 * Symlinks are followed to their real path, which is checked in full.
 */
export async function assertTrustedFile(file: TrustedFile, stat: StatPath = lstatPath): Promise<void> {
  const top = await stat(file.path);
  if (!top) return;
  let real = file.path;
  if (top.isSymlink) {
    try {
      real = await fs.realpath(file.path);
    } catch {
      throw new HostError(
        'UNSAFE_PATH',
        `${file.path} is a dangling symlink; point it at a root-owned file or replace it`,
      );
    }
  }
  const st = real === file.path ? top : await stat(real);
  if (!st || !st.isFile)
    throw new HostError(
      'UNSAFE_PATH',
      `${real} is not a regular file; keymaker reads it as root: replace it with a root-owned file`,
    );
  const problem = rootOwnedProblem(st);
  if (problem) {
    throw new HostError(
      'UNSAFE_PATH',
      `refusing to read ${real}: it ${describeRootOwnedProblem(problem)}, so another user could change who logs in; fix: chown ${file.fixOwner} ${real} && chmod ${file.fixMode} ${real}`,
    );
  }
  // The directories above the real file, and above the link when it is one: either could be swapped.
  const dirs = new Set([...directoriesAbove(real), ...directoriesAbove(file.path)]);
  for (const dir of dirs) {
    const d = await stat(dir);
    if (!d || !d.isDirectory) continue;
    const dirProblem = rootOwnedProblem(d);
    if (dirProblem) {
      throw new HostError(
        'UNSAFE_PATH',
        `refusing to read ${real}: its directory ${dir} ${describeRootOwnedProblem(dirProblem)}, so another user could replace the file; fix: chown root:root ${dir} && chmod go-w ${dir}`,
      );
    }
  }
}

/** The host config and the AWS files it names. */
export function runtimeTrustedFiles(
  configFile: string,
  config: { sharedCredentialsFile?: string; sharedConfigFile?: string },
  lookupUser: string,
): TrustedFile[] {
  const files: TrustedFile[] = [{ path: configFile, fixOwner: 'root:root', fixMode: '644' }];
  if (config.sharedCredentialsFile)
    files.push({ path: config.sharedCredentialsFile, fixOwner: `root:${lookupUser}`, fixMode: '640' });
  if (config.sharedConfigFile)
    files.push({ path: config.sharedConfigFile, fixOwner: `root:${lookupUser}`, fixMode: '640' });
  return files;
}
