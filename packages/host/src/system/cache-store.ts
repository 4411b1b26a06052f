/*
 * The login-to-login cache of the instance's role config and ID-resolver
 * credentials (/var/cache/keymaker). Only root writes it: the group sync
 * (every few minutes) and the PAM hook keep it warm; the lookup, which runs
 * as the unprivileged AuthorizedKeysCommandUser, only reads it. So a
 * compromised lookup user cannot plant a config that every later login
 * trusts, and no root process reads a file another user can write.
 *
 * Directory root:<lookup group> 0750 (made by install), files root 0640 with
 * the directory's group (0600 when the directory's group is root). A reader
 * trusts a file only when it and its directory are root-owned and not group-
 * or world-writable; anything else reads as a miss (a live IAM lookup).
 */
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CacheStore } from '@keymaker/core';
import { writeFileAtomic } from './atomic-write';
import { isRootOwned } from './root-owned';

export interface FileCacheStoreOptions {
  dir: string;
  /** Root processes write; the lookup only reads. */
  writable: boolean;
}

const KEY = /^[a-z0-9][a-z0-9-]{0,63}$/;
const MAX_BYTES = 64 * 1024;

export class FileCacheStore implements CacheStore {
  constructor(private readonly options: FileCacheStoreOptions) {}

  private fileFor(key: string): string {
    if (!KEY.test(key)) throw new TypeError(`bad cache key ${JSON.stringify(key)}`);
    return path.join(this.options.dir, `${key}.json`);
  }

  async get(key: string): Promise<unknown> {
    const file = this.fileFor(key);
    let handle: fs.FileHandle | undefined;
    try {
      const dirStat = await fs.lstat(this.options.dir);
      if (!dirStat.isDirectory() || !isRootOwned(dirStat)) return undefined;
      // O_NOFOLLOW: a symlink planted in place of the file is a miss, not a redirect.
      handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      const stat = await handle.stat();
      if (!stat.isFile() || !isRootOwned(stat) || stat.size > MAX_BYTES) return undefined;
      return JSON.parse(await handle.readFile('utf8'));
    } catch {
      return undefined;
    } finally {
      await handle?.close();
    }
  }

  async set(key: string, value: unknown): Promise<void> {
    if (!this.options.writable || process.getuid?.() !== 0) return;
    const dir = this.options.dir;
    let dirStat;
    try {
      dirStat = await fs.lstat(dir);
    } catch {
      await fs.mkdir(dir, { mode: 0o700 });
      dirStat = await fs.lstat(dir);
    }
    if (!dirStat.isDirectory() || !isRootOwned(dirStat)) return;
    const file = this.fileFor(key);
    writeFileAtomic(file, `${JSON.stringify(value)}\n`, {
      mode: dirStat.gid === 0 ? 0o600 : 0o640,
      uid: 0,
      gid: dirStat.gid,
    });
  }
}
