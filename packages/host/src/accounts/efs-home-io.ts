/*
 * The machine side of efs-home.ts. Creating a home as the user is a child process with her uid and gid
 * (`setpriv --reuid --regid --clear-groups`, an argument array, a reset environment) running a small Node
 * script: one mkdir(0700) and, only when that mkdir made the directory, the skeleton copied into it file by file
 * (lstat: links are copied as links, never followed; O_EXCL: nothing existing is overwritten). Its answer is
 * one JSON line on stdout.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { PathInfo } from '../system/host-system';
import type { CreateOutcome, EfsHomeIo } from './efs-home';

/** Runs as the user: argv = [mode ("create" | "copy"), home, skel]. */
export const CREATE_HOME_SCRIPT = `
'use strict';
const fs = require('fs');
const path = require('path');
const [mode, home, skel] = process.argv.slice(1);
process.umask(0o077);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
if (mode === 'create') {
  try {
    fs.mkdirSync(home, { mode: 0o700 });
  } catch (e) {
    say({ result: e.code === 'EEXIST' ? 'exists' : e.code === 'EACCES' || e.code === 'EPERM' ? 'denied' : 'failed', detail: e.code + ' ' + e.message });
    process.exit(0);
  }
}
let problem;
function copy(src, dst) {
  let names;
  try { names = fs.readdirSync(src); } catch (e) { problem = problem || src + ': ' + e.code; return; }
  for (const name of names) {
    const s = path.join(src, name), d = path.join(dst, name);
    try {
      const st = fs.lstatSync(s);
      if (st.isDirectory()) { fs.mkdirSync(d, { mode: 0o700 }); fs.chmodSync(d, st.mode & 0o777); copy(s, d); }
      else if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
      else if (st.isFile()) { fs.copyFileSync(s, d, fs.constants.COPYFILE_EXCL); fs.chmodSync(d, st.mode & 0o777); }
    } catch (e) { problem = problem || s + ': ' + e.code; }
  }
}
if (skel && fs.existsSync(skel)) copy(skel, home);
say(problem ? { result: 'created', skeletonProblem: problem } : { result: 'created' });
`;

function info(st: fs.Stats): PathInfo {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, dev: st.dev };
}

function quiet<T>(body: () => T): T | undefined {
  try {
    return body();
  } catch {
    return undefined;
  }
}

export interface NodeEfsHomeIoOptions {
  /** The Node binary the child runs (the hook's own). */
  nodePath?: string;
  setpriv?: string;
}

/** As uid:gid, through setpriv; the script's JSON answer, or 'failed' with what went wrong. */
function runAsUser(
  options: NodeEfsHomeIoOptions,
  uid: number,
  gid: number,
  args: string[],
): CreateOutcome & { result: string } {
  const r = spawnSync(
    options.setpriv ?? 'setpriv',
    [
      `--reuid=${uid}`,
      `--regid=${gid}`,
      '--clear-groups',
      '--',
      options.nodePath ?? process.execPath,
      '-e',
      CREATE_HOME_SCRIPT,
      ...args,
    ],
    {
      encoding: 'utf8',
      cwd: '/',
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
      timeout: 30_000,
    },
  );
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as CreateOutcome;
    if (['created', 'exists', 'denied', 'failed'].includes(parsed.result)) return parsed;
  } catch {
    /* below */
  }
  const why = r.error ? r.error.message : (r.stderr ?? '').trim().split('\n')[0] || `exit ${r.status}`;
  return { result: 'failed', detail: `setpriv as uid ${uid}: ${why}` };
}

export function nodeEfsHomeIo(options: NodeEfsHomeIoOptions = {}): EfsHomeIo {
  return {
    lstat: (p) => quiet(() => info(fs.lstatSync(p))),
    stat: (p) => quiet(() => info(fs.statSync(p))),
    readdir: (p) => quiet(() => fs.readdirSync(p)),
    createAsUser: (home, uid, gid, skel) => runAsUser(options, uid, gid, ['create', home, skel]),
    mkdirAsRoot(home) {
      try {
        fs.mkdirSync(home, { mode: 0o700 });
        return { result: 'created' };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'ERROR';
        const detail = `${code} ${(error as Error).message}`;
        return code === 'EEXIST'
          ? { result: 'exists' }
          : code === 'EACCES' || code === 'EPERM'
            ? { result: 'denied', detail }
            : { result: 'failed', detail };
      }
    },
    chown: (p, uid, gid) => fs.chownSync(p, uid, gid),
    rmdir: (p) => fs.rmdirSync(p),
    copySkeletonAsUser(home, uid, gid, skel) {
      const r = runAsUser(options, uid, gid, ['copy', home, skel]);
      return r.result === 'created' ? r.skeletonProblem : 'detail' in r ? r.detail : r.result;
    },
  };
}
