import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireLock, withLock } from '../src/lock';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-lock-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a second run is refused with LOCKED while the first holds the lock, and gets it afterwards', async () => {
  const file = path.join(dir, 'sync.lock');
  const first = await acquireLock(file, { isAlive: () => true });
  await expect(acquireLock(file, { isAlive: () => true })).rejects.toMatchObject({ code: 'LOCKED' });
  await first.release();
  const second = await acquireLock(file);
  await second.release();
  expect(fs.existsSync(file)).toBe(false);
});

test('a lock left by a dead process is taken over', async () => {
  const file = path.join(dir, 'sync.lock');
  fs.writeFileSync(file, '999999\n');
  const lock = await acquireLock(file, { isAlive: () => false });
  expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid}\n`);
  await lock.release();
});

test('a waiting run gets the lock once the holder releases it', async () => {
  const file = path.join(dir, 'sync.lock');
  const first = await acquireLock(file, { isAlive: () => true });
  setTimeout(() => void first.release(), 150);
  const order: string[] = [];
  await withLock(file, { waitMs: 2000, pollMs: 20, isAlive: () => true }, async () => order.push('second'));
  expect(order).toEqual(['second']);
});

test('many contenders never hold the lock at once (a lock that vanishes in between is not removed)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-lock-race.'));
  const lockPath = path.join(dir, 'lock');
  let inside = 0;
  let most = 0;
  try {
    await Promise.all(
      Array.from({ length: 40 }, () =>
        withLock(lockPath, { waitMs: 20_000, pollMs: 1 }, async () => {
          most = Math.max(most, ++inside);
          await new Promise((resolve) => setTimeout(resolve, 1));
          inside -= 1;
        }),
      ),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(most).toBe(1);
});
