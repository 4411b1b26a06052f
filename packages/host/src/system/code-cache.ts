// A V8 code cache for the host bundle: a fresh Node process per login spends ~40% of its own time
// compiling the ~480 KB bundle; loading the bytecode install compiled instead roughly halves that.
// The cache decides which code runs as the lookup user and as root (the PAM hook, the sync), so it
// is trusted only as the host config is (root-owned.ts): a cache another user could have written,
// or one made for other bundle bytes or another Node, is not used; the bundle is then compiled
// from source, as without a cache. V8 checks its own version and flags, but of the source only its
// length: the key below (bundle SHA-256, Node version, arch) is what ties the bytecode to the code.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { directoriesAbove, rootOwnedProblem } from './root-owned';

/** First line of a cache file; the second is the key, then V8's data. */
const MAGIC = 'keymaker-code-cache-v1';

/** Where the cache of a bundle lives: next to it, same name plus `.cache`. */
export function codeCachePath(bundlePath: string): string {
  return `${bundlePath}.cache`;
}

/** The bundle bytes and the runtime the bytecode is valid for. */
export function codeCacheKey(
  bundle: Buffer,
  runtime: { version: string; arch: string } = { version: process.version, arch: process.arch },
): string {
  return `${createHash('sha256').update(bundle).digest('hex')} node-${runtime.version} ${runtime.arch}`;
}

export function encodeCodeCache(key: string, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${MAGIC}\n${key}\n`), data]);
}

/** V8's data when the file is a cache for exactly this key, else undefined. */
export function decodeCodeCache(file: Buffer, key: string): Buffer | undefined {
  const header = Buffer.from(`${MAGIC}\n${key}\n`);
  if (file.length <= header.length || !file.subarray(0, header.length).equals(header)) return undefined;
  return file.subarray(header.length);
}

export type CodeCacheStatus = 'used' | 'missing' | 'untrusted' | 'mismatch' | 'rejected';

/** Only lstat/fstat/open/read, so tests can hand in a fake file system. */
export interface CodeCacheFs {
  lstat(p: string): { uid: number; mode: number; isDirectory(): boolean } | undefined;
  /** Opens without following a symlink; undefined when missing. */
  readNoFollow(p: string): { uid: number; mode: number; isFile: boolean; content: Buffer } | undefined;
}

export const nodeCodeCacheFs: CodeCacheFs = {
  lstat(p) {
    try {
      return fs.lstatSync(p);
    } catch {
      return undefined;
    }
  },
  readNoFollow(p) {
    let fd: number;
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (error) {
      // ELOOP: a symlink. Not ours to follow: the cache is a plain file install wrote.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return { uid: -1, mode: 0, isFile: false, content: Buffer.alloc(0) };
    }
    try {
      // fstat on the opened file: what is read is what was checked.
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return { uid: st.uid, mode: st.mode, isFile: false, content: Buffer.alloc(0) };
      return { uid: st.uid, mode: st.mode, isFile: true, content: fs.readFileSync(fd) };
    } finally {
      fs.closeSync(fd);
    }
  },
};

export type TrustedCodeCache = { status: 'ok'; data: Buffer } | { status: 'missing' | 'untrusted' | 'mismatch' };

/**
 * V8's data from the cache file, when root wrote it (root-owned, not group- or world-writable,
 * in root-owned directories that others cannot write) and it is for this key.
 */
export function readTrustedCodeCache(
  cachePath: string,
  key: string,
  io: CodeCacheFs = nodeCodeCacheFs,
): TrustedCodeCache {
  const file = readRootOwnedFile(cachePath, io);
  if (file.status !== 'ok') return file;
  const data = decodeCodeCache(file.content, key);
  return data ? { data, status: 'ok' } : { status: 'mismatch' };
}

/**
 * A file's bytes, synchronously, when it is a regular file (not a symlink) that root owns and only
 * root can write, in directories only root can write (root-owned.ts); for what runs before the
 * bundle has loaded (the loader), where assertTrustedFile's async checks are not at hand.
 */
export function readRootOwnedFile(
  p: string,
  io: CodeCacheFs = nodeCodeCacheFs,
): { status: 'ok'; content: Buffer } | { status: 'missing' | 'untrusted' } {
  const file = io.readNoFollow(p);
  if (!file) return { status: 'missing' };
  if (!file.isFile || rootOwnedProblem(file)) return { status: 'untrusted' };
  for (const dir of directoriesAbove(p)) {
    const st = io.lstat(dir);
    if (!st || !st.isDirectory() || rootOwnedProblem(st)) return { status: 'untrusted' };
  }
  return { status: 'ok', content: file.content };
}

/** Node's CommonJS module wrapper (module.wrap, which ESM cannot import by name). */
function wrapCommonJs(source: string): string {
  return `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
}

export interface LoadedBundle {
  exports: Record<string, unknown>;
  script: vm.Script;
  cache: CodeCacheStatus;
}

/**
 * Compiles and runs a CommonJS bundle as Node's own loader would (the module wrapper, a
 * `require` for its path, `__filename`, `__dirname`), with the code cache when it is trusted.
 */
export function loadBundle(bundlePath: string, options: { cachePath?: string; io?: CodeCacheFs } = {}): LoadedBundle {
  const source = fs.readFileSync(bundlePath);
  const found: TrustedCodeCache = options.cachePath
    ? readTrustedCodeCache(options.cachePath, codeCacheKey(source), options.io)
    : { status: 'missing' };
  const cachedData = found.status === 'ok' ? found.data : undefined;
  const script = new vm.Script(wrapCommonJs(source.toString('utf8')), { filename: bundlePath, cachedData });
  // A rejected cache costs nothing but the check: V8 then compiles from source.
  const cache: CodeCacheStatus =
    found.status === 'ok' ? (script.cachedDataRejected === true ? 'rejected' : 'used') : found.status;
  const moduleObject = { exports: {} as Record<string, unknown>, filename: bundlePath, id: bundlePath, loaded: false };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(
    moduleObject.exports,
    moduleObject.exports,
    createRequire(bundlePath),
    moduleObject,
    bundlePath,
    path.dirname(bundlePath),
  );
  moduleObject.loaded = true;
  return { exports: moduleObject.exports, script, cache };
}

/**
 * The cache file for a bundle, made by loading it (its top level runs, so the functions it calls
 * while loading are compiled too). Must run on the Node, with the flags, that will load it.
 */
export function makeCodeCache(bundlePath: string, installedPath?: string, io?: CodeCacheFs): Buffer {
  const loaded = loadBundle(bundlePath, installedPath ? { cachePath: installedPath, io } : {});
  // V8's data differs from run to run for the same bundle: an installed cache that is trusted, for this key and
  // accepted by V8 is kept byte for byte, so a second install changes nothing.
  if (installedPath && loaded.cache === 'used') return (io ?? nodeCodeCacheFs).readNoFollow(installedPath)!.content;
  return encodeCodeCache(codeCacheKey(fs.readFileSync(bundlePath)), loaded.script.createCachedData());
}
