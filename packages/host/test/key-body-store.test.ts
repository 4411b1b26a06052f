// Compat mode's stored key bodies (issue 14): what the unprivileged lookup accepts from the cache directory.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSshPublicKey, type CacheStore, type SshPublicKey } from '@keymaker/core';
import { FileCacheStore } from '../src/system/cache-store';
import { keyBodiesCacheKey, nextKeyBodies, readKeyBodies, writeKeyBodies } from '../src/login/key-body-store';

const keyDir = mkdtempSync(join(tmpdir(), 'km-kb-keys-'));
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));
function makeKey(name: string): SshPublicKey {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(keyDir, name)]);
  const parsed = parseSshPublicKey(readFileSync(join(keyDir, `${name}.pub`), 'utf8'));
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.key;
}
const K1 = makeKey('k1');
const K2 = makeKey('k2');
const ID1 = 'APKA0000000000000001';
const ID2 = 'APKA0000000000000002';

function memoryStore(): CacheStore & { values: Map<string, unknown> } {
  const values = new Map<string, unknown>();
  return {
    values,
    get: async (key) => values.get(key),
    set: async (key, value) => void values.set(key, JSON.parse(JSON.stringify(value))),
  };
}

describe('stored key bodies', () => {
  it('reads back what was written, keyed by the lowercased IAM user name', async () => {
    const store = memoryStore();
    await writeKeyBodies(
      store,
      'Alice',
      new Map([
        [ID1, K1],
        [ID2, K2],
      ]),
    );
    expect(keyBodiesCacheKey('Alice')).toBe(keyBodiesCacheKey('alice'));
    expect(keyBodiesCacheKey('alice')).toMatch(/^[a-z0-9][a-z0-9-]{0,63}$/);
    const read = await readKeyBodies(store, 'alice');
    expect([...read.keys()]).toEqual([ID1, ID2]);
    expect(read.get(ID1)?.line).toBe(K1.line);
  });

  it("ignores another user's file, even under her file name", async () => {
    const store = memoryStore();
    await writeKeyBodies(store, 'mallory', new Map([[ID1, K1]]));
    store.values.set(keyBodiesCacheKey('alice'), store.values.get(keyBodiesCacheKey('mallory')));
    expect((await readKeyBodies(store, 'alice')).size).toBe(0);
    expect((await readKeyBodies(store, 'mallory')).size).toBe(1);
  });

  it.each([
    ['a body with key options', `command="/bin/sh" ${K1.line}`],
    ['a private key', '-----BEGIN OPENSSH PRIVATE KEY-----'],
    ['a body that is not a string', 42],
    ['two lines', `${K1.line}\n${K2.line}`],
  ])('drops %s and keeps the valid ones', async (_what, bad) => {
    const store = memoryStore();
    store.values.set(keyBodiesCacheKey('alice'), {
      v: 1,
      iamUserName: 'alice',
      bodies: { [ID1]: bad, [ID2]: K2.line },
    });
    const read = await readKeyBodies(store, 'alice');
    expect([...read.keys()]).toEqual([ID2]);
  });

  it.each([
    ['not an object', 'x'],
    ['another version', { v: 2, iamUserName: 'alice', bodies: {} }],
    ['bodies not a map', { v: 1, iamUserName: 'alice', bodies: [K1.line] }],
    ['a bad key ID', { v: 1, iamUserName: 'alice', bodies: { '../x': K1.line } }],
  ])('a file that is %s gives no bodies', async (_what, value) => {
    const store = memoryStore();
    store.values.set(keyBodiesCacheKey('alice'), value);
    expect((await readKeyBodies(store, 'alice')).size).toBe(0);
  });

  it('a failing store reads as no bodies', async () => {
    const store: CacheStore = { get: () => Promise.reject(new Error('EIO')), set: async () => {} };
    expect((await readKeyBodies(store, 'alice')).size).toBe(0);
  });

  it('keeps the used bodies and the fetched ones; the rest drop out', () => {
    const next = nextKeyBodies(new Map([[ID1, K1]]), [{ keyId: ID2, key: K2 }]);
    expect([...next.keys()]).toEqual([ID1, ID2]);
  });
});

// The trusted-file rules need root (only root-owned files are trusted); CI runs as root.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

asRoot('stored key bodies on disk (FileCacheStore rules)', () => {
  let dir: string;
  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'km-kb-')), 'cache');
    mkdirSync(dir, { mode: 0o750 });
  });
  afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('root writes one small root-owned file per user; the read-only lookup store reads it and never writes', async () => {
    await writeKeyBodies(new FileCacheStore({ dir, writable: true }), 'alice', new Map([[ID1, K1]]));
    const files = readdirSync(dir);
    expect(files).toEqual([`${keyBodiesCacheKey('alice')}.json`]);
    const stat = statSync(join(dir, files[0]!));
    expect([stat.uid, stat.mode & 0o777]).toEqual([0, 0o600]);
    const reader = new FileCacheStore({ dir, writable: false });
    expect((await readKeyBodies(reader, 'alice')).get(ID1)?.line).toBe(K1.line);
    await writeKeyBodies(reader, 'bob', new Map([[ID2, K2]]));
    expect(readdirSync(dir)).toEqual(files);
  });

  it.each([
    ['owned by another user', (file: string) => chownSync(file, 65534, 65534)],
    ['group-writable', (file: string) => chmodSync(file, 0o660)],
    ['world-writable', (file: string) => chmodSync(file, 0o606)],
  ])('a file %s is ignored', async (_what, spoil) => {
    const store = new FileCacheStore({ dir, writable: true });
    await writeKeyBodies(store, 'alice', new Map([[ID1, K1]]));
    spoil(join(dir, `${keyBodiesCacheKey('alice')}.json`));
    expect((await readKeyBodies(new FileCacheStore({ dir, writable: false }), 'alice')).size).toBe(0);
  });

  it('a file larger than the cap is ignored', async () => {
    const file = join(dir, `${keyBodiesCacheKey('alice')}.json`);
    writeFileSync(
      file,
      JSON.stringify({ v: 1, iamUserName: 'alice', bodies: { [ID1]: K1.line }, pad: 'x'.repeat(70_000) }),
      { mode: 0o600 },
    );
    expect((await readKeyBodies(new FileCacheStore({ dir, writable: false }), 'alice')).size).toBe(0);
  });
});
