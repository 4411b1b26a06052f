/*
 * Two locks, for two kinds of critical section.
 *
 * acquireLock: a kernel lock (flock(2)) on an open lock file, held for seconds to minutes, so that
 * two group syncs, or a sync and an account creation, never run useradd/groupadd/gpasswd at the same
 * time. The kernel drops it when its holder dies, however it dies: no stale lock, and no pid that a
 * later, unrelated process can reuse to block every sync until reboot (what a pid-file lock did).
 * Node has no flock(), so util-linux's flock(1) takes it on the open file description this process
 * passes as its fd 3. A flock belongs to the description, not the process, so the lock stays after
 * flock(1) exits and lasts exactly as long as this process keeps the file open. The file is never
 * removed: removing it would let a second run lock a new file while the first holds the old.
 *
 * acquireShortLock: an O_EXCL lock file for sections of a few milliseconds that hundreds of
 * processes may want at once (the PAM hook's shared state). Handing a flock over costs a process
 * spawn inside the section, which under a flood of connections queued waiters past their deadline.
 * A holder that died is detected by its pid, and since no holder keeps it long, a lock older than
 * maxHoldMs is stale whatever its pid says: a reused pid delays waiters by that much at most.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs, constants } from 'node:fs';
import { HostError } from '@keymaker/core';

export interface HeldLock {
  release(): Promise<void>;
}

export interface LockOptions {
  /** Wait this long for the holder before giving up with LOCKED. Default 0: one try. */
  waitMs?: number;
}

const FLOCK = ['/usr/bin/flock', '/bin/flock'].find((candidate) => existsSync(candidate)) ?? '/usr/bin/flock';
const HELD_ELSEWHERE = 75;

/**
 * true: this description now holds the lock; false: another held it for all of waitMs. flock(1)
 * waits in the kernel (no polling, one child per attempt) and is woken when the holder lets go.
 */
function flockFd(fd: number, path: string, waitMs: number): Promise<boolean> {
  const wait = waitMs > 0 ? ['--timeout', (waitMs / 1000).toFixed(3)] : ['--nonblock'];
  return new Promise((resolve, reject) => {
    const child = spawn(FLOCK, ['--exclusive', ...wait, '--conflict-exit-code', String(HELD_ELSEWHERE), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const fail = (why: string) =>
      reject(new HostError('SYSTEM_COMMAND_FAILED', `cannot lock ${path} with ${FLOCK}: ${why}; install util-linux`));
    child.on('error', (error) => fail(error.message));
    child.on('close', (code) => {
      if (code === 0) resolve(true);
      else if (code === HELD_ELSEWHERE) resolve(false);
      else fail(stderr.trim() || `exit ${code}`);
    });
  });
}

async function holderPid(path: string): Promise<number | undefined> {
  const text = await fs.readFile(path, 'utf8').catch(() => '');
  return /^\d+\n$/.test(text) ? Number(text) : undefined;
}

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    throw new HostError('SYSTEM_COMMAND_FAILED', `cannot open the lock file ${path}: ${(error as Error).message}`);
  }
  try {
    if (!(await flockFd(handle.fd, path, options.waitMs ?? 0))) {
      const pid = await holderPid(path);
      throw new HostError(
        'LOCKED',
        `another keymaker run holds ${path}${pid ? ` (pid ${pid})` : ''}; try again when it has finished`,
        {
          details: { pid },
        },
      );
    }
    // For the LOCKED message of the next run only; the lock itself is the kernel's.
    await handle.truncate(0);
    await handle.write(`${process.pid}\n`, 0);
  } catch (error) {
    await handle.close();
    throw error;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await handle.close();
    },
  };
}

export async function withLock<T>(path: string, options: LockOptions, body: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}

export interface ShortLockOptions {
  /** Keep trying this long before giving up with LOCKED. */
  waitMs: number;
  pollMs?: number;
  /** No holder keeps the lock longer: an older lock file is stale. */
  maxHoldMs: number;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    const handle = await fs.open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await handle.writeFile(`${process.pid}\n`);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new HostError('SYSTEM_COMMAND_FAILED', `cannot create the lock file ${path}: ${(error as Error).message}`);
  }
}

export async function acquireShortLock(path: string, options: ShortLockOptions): Promise<HeldLock> {
  const until = Date.now() + options.waitMs;
  for (;;) {
    if (await tryCreate(path)) {
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await fs.rm(path, { force: true });
        },
      };
    }
    let owner: { pid?: number; ageMs: number } | undefined;
    try {
      const [text, stat] = await Promise.all([fs.readFile(path, 'utf8'), fs.lstat(path)]);
      owner = { pid: /^\d+\n$/.test(text) ? Number(text) : undefined, ageMs: Date.now() - stat.mtimeMs };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    // Gone in between: try again at once (never remove it: another run may have just created it).
    if (owner === undefined) continue;
    const dead = owner.pid !== undefined && owner.pid !== process.pid && !processAlive(owner.pid);
    if (dead || owner.ageMs > options.maxHoldMs) {
      await fs.rm(path, { force: true });
      continue;
    }
    if (Date.now() >= until) {
      throw new HostError(
        'LOCKED',
        `another keymaker run holds ${path}${owner.pid ? ` (pid ${owner.pid})` : ''}; try again when it has finished`,
        {
          details: { pid: owner.pid },
        },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 5));
  }
}
