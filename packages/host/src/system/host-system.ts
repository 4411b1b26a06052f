/*
 * Everything install/uninstall does to the machine goes through this narrow
 * interface, so the same code runs on a host and against a fake in unit tests.
 * Synchronous on purpose: a handful of small files and commands, run in order.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic-write';
import { parseGroupLine, parsePasswdLine } from './nss-entries';

export interface FileState {
  content: Buffer;
  /** Permission bits (& 0o7777). */
  mode: number;
  uid: number;
  gid: number;
}

export interface PathInfo {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  /** The device: a mount point's differs from its parent's. */
  dev?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostSystem {
  getuid(): number;
  /** Regular file with its mode and owner, or undefined when missing. */
  readFile(p: string): FileState | undefined;
  /** Follows symlinks; undefined when missing. */
  stat(p: string): PathInfo | undefined;
  lstat(p: string): PathInfo | undefined;
  realpath(p: string): string;
  readdir(p: string): string[] | undefined;
  /** Replaces p atomically with the given owner and mode (atomic-write.ts). */
  writeFileAtomic(p: string, content: Buffer | string, mode: number, uid: number, gid: number): void;
  /** Sets mode and owner of an existing path. */
  setOwnerMode(p: string, mode: number, uid: number, gid: number): void;
  mkdir(p: string, mode: number, uid: number, gid: number): void;
  removeFile(p: string): void;
  /** Removes an empty directory; false when it is not empty or missing. */
  removeEmptyDir(p: string): boolean;
  removeTree(p: string): void;
  run(argv: string[], opts?: { input?: string; timeoutMs?: number }): RunResult;
  /** uid/gid of a user, or undefined. */
  userIds(name: string): { uid: number; gid: number } | undefined;
  groupId(name: string): number | undefined;
  /** Running (not a zombie). */
  processAlive(pid: number): boolean;
  /** /proc/PID/comm, or undefined. */
  processName(pid: number): string | undefined;
  signal(pid: number, signal: NodeJS.Signals): void;
  sleep(ms: number): void;
  randomName(): string;
}

function info(st: fs.Stats): PathInfo {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, dev: st.dev };
}

function missing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** One getent entry by name; undefined when there is none (or getent printed no line it could parse). */
function getent<T>(db: 'passwd' | 'group', name: string, parse: (line: string) => T | undefined): T | undefined {
  const r = spawnSync('getent', [db, '--', name], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return parse(r.stdout.trim());
}

export function nodeHostSystem(): HostSystem {
  return {
    getuid: () => process.getuid?.() ?? -1,
    readFile(p) {
      try {
        const st = fs.statSync(p);
        if (!st.isFile()) return undefined;
        return { content: fs.readFileSync(p), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      } catch (error) {
        if (missing(error)) return undefined;
        throw error;
      }
    },
    stat(p) {
      try {
        return info(fs.statSync(p));
      } catch (error) {
        if (missing(error)) return undefined;
        throw error;
      }
    },
    lstat(p) {
      try {
        return info(fs.lstatSync(p));
      } catch (error) {
        if (missing(error)) return undefined;
        throw error;
      }
    },
    realpath: (p) => fs.realpathSync(p),
    readdir(p) {
      try {
        return fs.readdirSync(p);
      } catch (error) {
        if (missing(error)) return undefined;
        throw error;
      }
    },
    writeFileAtomic(p, content, mode, uid, gid) {
      writeFileAtomic(p, content, { mode, uid, gid });
    },
    setOwnerMode(p, mode, uid, gid) {
      fs.chownSync(p, uid, gid);
      fs.chmodSync(p, mode);
    },
    mkdir(p, mode, uid, gid) {
      fs.mkdirSync(p, { mode: 0o700 });
      fs.chownSync(p, uid, gid);
      fs.chmodSync(p, mode);
    },
    removeFile(p) {
      fs.rmSync(p, { force: true });
    },
    removeEmptyDir(p) {
      try {
        fs.rmdirSync(p);
        return true;
      } catch {
        return false;
      }
    },
    removeTree(p) {
      fs.rmSync(p, { recursive: true, force: true });
    },
    run(argv, opts = {}) {
      const [cmd, ...args] = argv as [string, ...string[]];
      const r = spawnSync(cmd, args, {
        input: opts.input,
        encoding: 'utf8',
        timeout: opts.timeoutMs ?? 60_000,
        // The host bundle's code cache comes back on stdout (base64, ~0.8 MB).
        maxBuffer: 16 * 1024 * 1024,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (r.error) return { code: 127, stdout: '', stderr: r.error.message };
      return { code: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    },
    userIds(name) {
      const entry = getent('passwd', name, parsePasswdLine);
      return entry ? { uid: entry.uid, gid: entry.gid } : undefined;
    },
    groupId(name) {
      return getent('group', name, parseGroupLine)?.gid;
    },
    processAlive(pid) {
      try {
        // A process that exited but was not reaped yet still answers kill(pid, 0).
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
      } catch {
        return false;
      }
    },
    processName(pid) {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return undefined;
      }
    },
    signal(pid, signal) {
      process.kill(pid, signal);
    },
    sleep(ms) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    },
    randomName: () => crypto.randomBytes(6).toString('hex'),
  };
}
