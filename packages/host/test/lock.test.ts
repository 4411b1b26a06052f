import { expect } from '@jest/globals';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock, acquireShortLock, withLock } from '../src/system/lock';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-lock-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A separate process holding a flock on the file (as a sync would) until it is killed. */
function holderProcess(file: string): Promise<ReturnType<typeof spawn>> {
  // One process from lock to kill: the shell execs into sleep, keeping the locked descriptor.
  const child = spawn(
    '/bin/bash',
    ['-c', 'exec 9>>"$1"; /usr/bin/flock --exclusive 9; echo locked; exec sleep 60', 'holder', file],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`holder exited early (${code})`)));
  });
}

test('a second run is refused with LOCKED (naming the holder) while the first holds the lock, and gets it afterwards', async () => {
  const file = path.join(dir, 'sync.lock');
  const first = await acquireLock(file);
  await expect(acquireLock(file)).rejects.toMatchObject({
    code: 'LOCKED',
    message: expect.stringContaining(`pid ${process.pid}`),
  });
  await first.release();
  const second = await acquireLock(file);
  await second.release();
});

test('a lock file naming a live, unrelated process (a reused pid) does not block anyone', async () => {
  const file = path.join(dir, 'sync.lock');
  // pid 1 always runs; a pid-file lock took this as held, and every sync exited LOCKED until reboot.
  fs.writeFileSync(file, '1\n');
  const lock = await acquireLock(file);
  expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`);
  await lock.release();
});

test('a holder killed with SIGKILL leaves no lock behind', async () => {
  const file = path.join(dir, 'sync.lock');
  const holder = await holderProcess(file);
  await expect(acquireLock(file)).rejects.toMatchObject({ code: 'LOCKED' });
  const exited = new Promise((resolve) => holder.once('exit', resolve));
  holder.kill('SIGKILL');
  await exited;
  const lock = await acquireLock(file, { waitMs: 2000 });
  await lock.release();
});

test('a waiting run gets the lock once the holder releases it', async () => {
  const file = path.join(dir, 'sync.lock');
  const first = await acquireLock(file);
  setTimeout(() => void first.release(), 150);
  const order: string[] = [];
  await withLock(file, { waitMs: 2000 }, async () => order.push('second'));
  expect(order).toEqual(['second']);
});

test('a symlink planted as the lock file is refused, not followed', async () => {
  const target = path.join(dir, 'target');
  fs.writeFileSync(target, 'precious\n');
  const file = path.join(dir, 'sync.lock');
  fs.symlinkSync(target, file);
  await expect(acquireLock(file)).rejects.toMatchObject({ code: 'SYSTEM_COMMAND_FAILED' });
  expect(fs.readFileSync(target, 'utf8')).toBe('precious\n');
});

test('many contenders never hold the lock at once', async () => {
  const lockPath = path.join(dir, 'lock');
  let inside = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 40 }, () =>
      withLock(lockPath, { waitMs: 30_000 }, async () => {
        most = Math.max(most, ++inside);
        await new Promise((resolve) => setTimeout(resolve, 1));
        inside -= 1;
      }),
    ),
  );
  expect(most).toBe(1);
}, 60_000);

describe('the short lock (PAM state: held for milliseconds, wanted by many processes at once)', () => {
  test('a second taker waits, then gets it; the file is gone after release', async () => {
    const file = path.join(dir, 'state.lock');
    const first = await acquireShortLock(file, { waitMs: 0, maxHoldMs: 10_000 });
    await expect(acquireShortLock(file, { waitMs: 0, maxHoldMs: 10_000 })).rejects.toMatchObject({ code: 'LOCKED' });
    setTimeout(() => void first.release(), 50);
    const second = await acquireShortLock(file, { waitMs: 2000, maxHoldMs: 10_000 });
    await second.release();
    expect(fs.existsSync(file)).toBe(false);
  });

  test('a lock of a dead holder is taken over at once', async () => {
    const file = path.join(dir, 'state.lock');
    fs.writeFileSync(file, '999999999\n');
    const lock = await acquireShortLock(file, { waitMs: 0, maxHoldMs: 10_000 });
    await lock.release();
  });

  test('a reused pid (a live, unrelated process) holds it no longer than maxHoldMs', async () => {
    const file = path.join(dir, 'state.lock');
    fs.writeFileSync(file, '1\n');
    await expect(acquireShortLock(file, { waitMs: 0, maxHoldMs: 10_000 })).rejects.toMatchObject({ code: 'LOCKED' });
    const old = new Date(Date.now() - 11_000);
    fs.utimesSync(file, old, old);
    const lock = await acquireShortLock(file, { waitMs: 0, maxHoldMs: 10_000 });
    await lock.release();
  });
});
