// writeFileAtomic: readers see the old bytes or the new ones, with the right mode from the first
// moment; a failure anywhere leaves the old file and no temp file behind.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { atomicTempPath, writeFileAtomic } from '../src/system/atomic-write';

// The real module object (not the compiled namespace copy), so a spy reaches the code under test.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const realFs = require('node:fs') as typeof fs;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-atomic.'));
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('replaces the file with the new bytes and mode, leaving no temp file', () => {
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, 'old\n', { mode: 0o644 });
  writeFileAtomic(file, 'new\n', { mode: 0o640 });
  expect(fs.readFileSync(file, 'utf8')).toBe('new\n');
  expect(fs.statSync(file).mode & 0o7777).toBe(0o640);
  expect(fs.readdirSync(dir)).toEqual(['config']);
});

test('the temp file already has the final mode when it is renamed into place', () => {
  const file = path.join(dir, 'config');
  const rename = realFs.renameSync;
  const modes: number[] = [];
  jest.spyOn(realFs, 'renameSync').mockImplementation((from, to) => {
    modes.push(fs.statSync(from).mode & 0o7777);
    rename(from, to);
  });
  writeFileAtomic(file, 'x', { mode: 0o604, uid: process.getuid?.(), gid: process.getgid?.() });
  expect(modes).toEqual([0o604]);
});

test('the temp file is hidden, in the same directory, and named as keymaker’s', () => {
  const tmp = atomicTempPath('/etc/pam.d/sshd');
  expect(path.dirname(tmp)).toBe('/etc/pam.d');
  expect(path.basename(tmp)).toMatch(/^\.sshd\.keymaker-\d+-[0-9a-f]{12}$/);
  expect(atomicTempPath('/etc/pam.d/sshd')).not.toBe(tmp);
});

test('a failing write (EIO at fsync) leaves the old bytes and no temp file', () => {
  const file = path.join(dir, 'config');
  fs.writeFileSync(file, 'old\n', { mode: 0o644 });
  jest.spyOn(realFs, 'fsyncSync').mockImplementation(() => {
    throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
  });
  expect(() => writeFileAtomic(file, 'new\n', { mode: 0o644 })).toThrow('EIO');
  expect(fs.readFileSync(file, 'utf8')).toBe('old\n');
  expect(fs.readdirSync(dir)).toEqual(['config']);
});

test('a failing rename (a directory in the way) removes the temp file and keeps what was there', () => {
  const target = path.join(dir, 'taken');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'inside'), 'kept');
  expect(() => writeFileAtomic(target, 'new', { mode: 0o600 })).toThrow();
  expect(fs.readdirSync(dir)).toEqual(['taken']);
  expect(fs.readFileSync(path.join(target, 'inside'), 'utf8')).toBe('kept');
});

test('a missing directory fails before anything is written', () => {
  expect(() => writeFileAtomic(path.join(dir, 'no', 'file'), 'x', { mode: 0o600 })).toThrow(/ENOENT/);
  expect(fs.readdirSync(dir)).toEqual([]);
});

test('not durable: no fsync at all (rate-limit state written on every lookup)', () => {
  const fsync = jest.spyOn(realFs, 'fsyncSync');
  writeFileAtomic(path.join(dir, 'state.json'), '{}', { mode: 0o600, durable: false });
  expect(fsync).not.toHaveBeenCalled();
  writeFileAtomic(path.join(dir, 'state.json'), '{}', { mode: 0o600 });
  expect(fsync).toHaveBeenCalledTimes(2); // the file, then its directory
});
