import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { HostError } from '@keymaker/core';

/**
 * The files the runtime reads to decide who logs in (the host config, the AWS
 * credentials and config files it names) must be changeable by root only:
 * whoever can edit them can point the lookup at their own "IAM" and print any
 * key for any managed account, or make the root-run hook and sync create
 * accounts and groups. So each file and every directory above it must be
 * owned by root and not group- or world-writable (sshd's rule for its own
 * files), and the file must be a regular file. Checked for the commands that
 * run as root (PAM hook, sync) and for the lookup sshd runs.
 */
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

function problemOf(st: PathStat): string | undefined {
  if (st.uid !== 0) return `is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o002) return 'is world-writable';
  if (st.mode & 0o020) return 'is group-writable';
  return undefined;
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
  const problem = problemOf(st);
  if (problem) {
    throw new HostError(
      'UNSAFE_PATH',
      `refusing to read ${real}: it ${problem}, so another user could change who logs in; fix: chown ${file.fixOwner} ${real} && chmod ${file.fixMode} ${real}`,
    );
  }
  // The directories above the real file, and above the link when it is one: either could be swapped.
  const dirs = new Set<string>();
  for (const start of new Set([real, file.path])) {
    for (let dir = path.dirname(start); ; dir = path.dirname(dir)) {
      dirs.add(dir);
      if (dir === path.dirname(dir)) break;
    }
  }
  for (const dir of dirs) {
    const d = await stat(dir);
    if (!d || !d.isDirectory) continue;
    const dirProblem = problemOf(d);
    if (dirProblem) {
      throw new HostError(
        'UNSAFE_PATH',
        `refusing to read ${real}: its directory ${dir} ${dirProblem}, so another user could replace the file; fix: chown root:root ${dir} && chmod go-w ${dir}`,
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
