import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileCacheStore } from '../src/system/cache-store';

// These tests need root (the cache trusts only root-owned files); CI runs as root.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

asRoot('FileCacheStore', () => {
  let base: string;
  let dir: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'km-cache-'));
    dir = join(base, 'cache');
    mkdirSync(dir, { mode: 0o750 });
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  it('root writes a 0640 file with the directory group; the reader reads it back', async () => {
    chownSync(dir, 0, 65534);
    await new FileCacheStore({ dir, writable: true }).set('instance-config-v1', { a: 1 });
    const stat = statSync(join(dir, 'instance-config-v1.json'));
    expect(stat.mode & 0o777).toBe(0o640);
    expect([stat.uid, stat.gid]).toEqual([0, 65534]);
    await expect(new FileCacheStore({ dir, writable: false }).get('instance-config-v1')).resolves.toEqual({ a: 1 });
    // No temp files left behind.
    expect(readdirSync(dir)).toEqual(['instance-config-v1.json']);
  });

  it('a read-only store (the lookup) never writes', async () => {
    await new FileCacheStore({ dir, writable: false }).set('k', { a: 1 });
    expect(readdirSync(dir)).toEqual([]);
  });

  it.each([
    ['owned by another user', (file: string) => chownSync(file, 65534, 65534)],
    ['group-writable', (file: string) => chmodSync(file, 0o660)],
    ['world-writable', (file: string) => chmodSync(file, 0o646)],
    ['not JSON', (file: string) => writeFileSync(file, '{oops')],
  ])('a file %s reads as a miss', async (_name, spoil) => {
    const store = new FileCacheStore({ dir, writable: true });
    await store.set('k', { a: 1 });
    spoil(join(dir, 'k.json'));
    await expect(store.get('k')).resolves.toBeUndefined();
  });

  it('a symlink planted in place of the file reads as a miss', async () => {
    writeFileSync(join(base, 'elsewhere.json'), '{"a":2}');
    symlinkSync(join(base, 'elsewhere.json'), join(dir, 'k.json'));
    await expect(new FileCacheStore({ dir, writable: false }).get('k')).resolves.toBeUndefined();
  });

  it('a group-writable directory is not trusted, and not written', async () => {
    chmodSync(dir, 0o770);
    const store = new FileCacheStore({ dir, writable: true });
    await store.set('k', { a: 1 });
    expect(readdirSync(dir)).toEqual([]);
    await expect(store.get('k')).resolves.toBeUndefined();
  });
});
