// The host bundle's V8 code cache (issue 14): used only when root wrote it for exactly these bundle
// bytes on this Node; anything else is ignored and the bundle compiles from source, as without one.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  codeCacheKey,
  decodeCodeCache,
  encodeCodeCache,
  loadBundle,
  makeCodeCache,
  readTrustedCodeCache,
  type CodeCacheFs,
} from '../src/system/code-cache';

const BUNDLE = '/usr/local/lib/keymaker/keymaker-host.cjs';
const CACHE = `${BUNDLE}.cache`;
const KEY = codeCacheKey(Buffer.from('bundle bytes'));

type Entry = { uid: number; mode: number; dir?: boolean; symlink?: boolean; content?: Buffer };
const rootDir: Entry = { uid: 0, mode: 0o755, dir: true };
const dirs = {
  '/': rootDir,
  '/usr': rootDir,
  '/usr/local': rootDir,
  '/usr/local/lib': rootDir,
  '/usr/local/lib/keymaker': rootDir,
};

/** A file system of lstat answers; readNoFollow refuses a symlink as O_NOFOLLOW does. */
function fakeFs(entries: Record<string, Entry>): CodeCacheFs {
  return {
    lstat: (p) => {
      const e = entries[p];
      return e && { uid: e.uid, mode: e.mode, isDirectory: () => !!e.dir };
    },
    readNoFollow: (p) => {
      const e = entries[p];
      if (!e) return undefined;
      if (e.symlink) return { uid: -1, mode: 0, isFile: false, content: Buffer.alloc(0) };
      return { uid: e.uid, mode: e.mode, isFile: !e.dir, content: e.content ?? Buffer.alloc(0) };
    },
  };
}
const cacheFile = (over: Partial<Entry> = {}): Entry => ({
  uid: 0,
  mode: 0o100644,
  content: encodeCodeCache(KEY, Buffer.from('v8')),
  ...over,
});

test('a root-owned 0644 cache for this key, in root-owned directories, is used', () => {
  expect(readTrustedCodeCache(CACHE, KEY, fakeFs({ ...dirs, [CACHE]: cacheFile() }))).toEqual({
    status: 'ok',
    data: Buffer.from('v8'),
  });
});

test('a missing cache is a miss, not an error', () => {
  expect(readTrustedCodeCache(CACHE, KEY, fakeFs(dirs))).toEqual({ status: 'missing' });
});

test.each([
  ['group-writable', cacheFile({ mode: 0o100664 })],
  ['world-writable', cacheFile({ mode: 0o100646 })],
  ['owned by another user', cacheFile({ uid: 1000 })],
  ['a symlink', cacheFile({ symlink: true })],
  ['a directory', { uid: 0, mode: 0o755, dir: true }],
])('a cache that is %s is ignored', (_what, entry) => {
  expect(readTrustedCodeCache(CACHE, KEY, fakeFs({ ...dirs, [CACHE]: entry }))).toEqual({ status: 'untrusted' });
});

test.each([
  ['group-writable', { '/usr/local/lib/keymaker': { uid: 0, mode: 0o775, dir: true } }],
  ['owned by another user', { '/usr/local/lib': { uid: 1000, mode: 0o755, dir: true } }],
  ['world-writable, even sticky', { '/usr/local': { uid: 0, mode: 0o1777, dir: true } }],
])('a cache below a directory that is %s is ignored (the file could be swapped)', (_what, dir) => {
  expect(readTrustedCodeCache(CACHE, KEY, fakeFs({ ...dirs, ...dir, [CACHE]: cacheFile() }))).toEqual({
    status: 'untrusted',
  });
});

test('a cache for other bundle bytes, another Node version or arch is a mismatch', () => {
  const io = fakeFs({ ...dirs, [CACHE]: cacheFile() });
  expect(readTrustedCodeCache(CACHE, codeCacheKey(Buffer.from('bundle bytes!')), io)).toEqual({ status: 'mismatch' });
  const otherNode = codeCacheKey(Buffer.from('bundle bytes'), { version: 'v20.20.2', arch: process.arch });
  expect(readTrustedCodeCache(CACHE, otherNode, io)).toEqual({ status: 'mismatch' });
  const otherArch = codeCacheKey(Buffer.from('bundle bytes'), { version: process.version, arch: 'arm64' });
  expect(readTrustedCodeCache(CACHE, otherArch, io)).toEqual({ status: 'mismatch' });
  expect(decodeCodeCache(Buffer.from('not a cache'), KEY)).toBeUndefined();
});

describe('loading a real CommonJS bundle', () => {
  let dir: string;
  let bundle: string;
  // The bundle's own answers: builtins through its require, its __dirname, and how its code ran.
  const source = (answer: string) =>
    `const os = require('node:os'); exports.dir = __dirname; exports.file = __filename; exports.hasOs = typeof os.cpus === 'function'; module.exports.answer = ${JSON.stringify(answer)};\n`;
  /** The temp dir is below world-writable /tmp: this io trusts it, as a root-owned libDir would be. */
  const trusting: CodeCacheFs = {
    lstat: (p) => ({ uid: 0, mode: 0o755, isDirectory: () => fs.statSync(p).isDirectory() }),
    readNoFollow: (p) =>
      fs.existsSync(p) ? { uid: 0, mode: 0o100644, isFile: true, content: fs.readFileSync(p) } : undefined,
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-code-cache.'));
    bundle = path.join(dir, 'keymaker-host.cjs');
    fs.writeFileSync(bundle, source('from source'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('with its cache: V8 accepts it, and require, __dirname, __filename and module.exports work', () => {
    fs.writeFileSync(`${bundle}.cache`, makeCodeCache(bundle));
    const loaded = loadBundle(bundle, { cachePath: `${bundle}.cache`, io: trusting });
    expect(loaded.cache).toBe('used');
    expect(loaded.exports).toEqual({ dir, file: bundle, hasOs: true, answer: 'from source' });
  });

  test('without a cache, or with the real file system below /tmp (not root-owned all the way), it still runs', () => {
    expect(loadBundle(bundle, { cachePath: `${bundle}.cache`, io: trusting })).toMatchObject({
      cache: 'missing',
      exports: { answer: 'from source' },
    });
    fs.writeFileSync(`${bundle}.cache`, makeCodeCache(bundle));
    expect(loadBundle(bundle, { cachePath: `${bundle}.cache` })).toMatchObject({
      cache: 'untrusted',
      exports: { answer: 'from source' },
    });
  });

  test('a cache of an older bundle is not used: the new bundle runs its own code', () => {
    fs.writeFileSync(`${bundle}.cache`, makeCodeCache(bundle));
    // Same length, other code: V8 alone (it checks the source length) could take the old bytecode.
    fs.writeFileSync(bundle, source('from update'));
    const loaded = loadBundle(bundle, { cachePath: `${bundle}.cache`, io: trusting });
    expect(loaded.cache).toBe('mismatch');
    expect(loaded.exports.answer).toBe('from update');
  });

  test('data V8 rejects (right key, corrupt bytes) is reported and the bundle compiles from source', () => {
    fs.writeFileSync(`${bundle}.cache`, encodeCodeCache(codeCacheKey(fs.readFileSync(bundle)), Buffer.alloc(64, 7)));
    const loaded = loadBundle(bundle, { cachePath: `${bundle}.cache`, io: trusting });
    expect(loaded.cache).toBe('rejected');
    expect(loaded.exports.answer).toBe('from source');
  });

  test('install keeps an installed cache V8 accepts byte for byte, and replaces a rejected or outdated one', () => {
    const installed = `${bundle}.cache`;
    fs.writeFileSync(installed, makeCodeCache(bundle));
    const first = fs.readFileSync(installed);
    // A second install: the same bytes, so it changes nothing.
    expect(makeCodeCache(bundle, installed, trusting).equals(first)).toBe(true);

    // Source this process has not compiled yet: V8 ignores cachedData for a script it compiled before.
    fs.writeFileSync(bundle, source('rejected case'));
    fs.writeFileSync(installed, encodeCodeCache(codeCacheKey(fs.readFileSync(bundle)), Buffer.alloc(64, 7)));
    const replaced = makeCodeCache(bundle, installed, trusting);
    expect(decodeCodeCache(replaced, codeCacheKey(fs.readFileSync(bundle)))?.equals(Buffer.alloc(64, 7))).toBe(false);

    fs.writeFileSync(installed, first);
    fs.writeFileSync(bundle, source('from another update'));
    const renewed = makeCodeCache(bundle, installed, trusting);
    expect(decodeCodeCache(renewed, codeCacheKey(fs.readFileSync(bundle)))).toBeDefined();
    // Not trusted (the real file system below /tmp): never kept, always made anew.
    expect(decodeCodeCache(makeCodeCache(bundle, installed), codeCacheKey(fs.readFileSync(bundle)))).toBeDefined();
  });
});
