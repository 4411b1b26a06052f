import { promises as fs, constants } from 'node:fs';
import { HostError } from '@keymaker/core';

/**
 * A pid-file lock: created with O_EXCL (atomic), holding the owner's pid.
 * A lock whose pid no longer runs is stale (a run that was killed) and is
 * taken over. Used so that two group syncs, or a sync and an account
 * creation, never run useradd/groupadd/gpasswd at the same time.
 */
export interface HeldLock {
  release(): Promise<void>;
}

export interface LockOptions {
  /** Keep trying this long before giving up with LOCKED. Default 0: one try. */
  waitMs?: number;
  pollMs?: number;
  /** Test hook: whether a pid is alive. */
  isAlive?: (pid: number) => boolean;
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
    const handle = await fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
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

/** The pid in the lock file, or undefined when it is unreadable/garbage (then it is treated as stale only if old). */
async function ownerOf(path: string): Promise<{ pid?: number; ageMs: number } | undefined> {
  try {
    const [text, stat] = await Promise.all([fs.readFile(path, 'utf8'), fs.lstat(path)]);
    const pid = /^\d+\n?$/.test(text) ? Number(text.trim()) : undefined;
    return { pid, ageMs: Date.now() - stat.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  const isAlive = options.isAlive ?? processAlive;
  const until = Date.now() + (options.waitMs ?? 0);
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
    const owner = await ownerOf(path);
    // Gone in between: try again at once (never remove it: another run may have just created it).
    if (owner === undefined) continue;
    // A dead pid, or an empty file older than 10 s (a crash between create and write): stale.
    const stale = owner.pid !== undefined ? !isAlive(owner.pid) && owner.pid !== process.pid : owner.ageMs > 10_000;
    if (stale) {
      await fs.rm(path, { force: true });
      continue;
    }
    if (Date.now() >= until) {
      throw new HostError('LOCKED', `another keymaker run holds ${path}${owner?.pid ? ` (pid ${owner.pid})` : ''}; try again when it has finished`, {
        details: { pid: owner?.pid },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 100));
  }
}

export async function withLock<T>(path: string, options: LockOptions, body: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}
