// The one way keymaker replaces a file: a reader (sshd, PAM, a concurrent login) sees the old
// bytes or the new ones, never a half-written file, and never a moment where the new file has
// the wrong owner or mode. The temp file lives in the target's directory (rename is atomic only
// within one filesystem), is created O_EXCL|O_NOFOLLOW (a planted file or symlink makes the write
// fail instead of redirecting it), gets its owner and mode before the rename, and is removed when
// anything fails. Synchronous: every caller writes one small file, and install runs in order.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** Permission bits of the new file. */
  mode: number;
  /** Owner of the new file; left as the writer's when omitted. */
  uid?: number;
  gid?: number;
  /**
   * fsync the file before the rename and the directory after it (the default), so the new bytes
   * survive a crash. Off only for state whose loss is harmless and which is written on every login.
   */
  durable?: boolean;
}

/** The temp file's name: hidden, in the same directory, and recognisably keymaker's. */
export function atomicTempPath(file: string): string {
  return path.join(
    path.dirname(file),
    `.${path.basename(file)}.keymaker-${process.pid}-${crypto.randomBytes(6).toString('hex')}`,
  );
}

export function writeFileAtomic(file: string, content: Buffer | string, options: AtomicWriteOptions): void {
  const durable = options.durable ?? true;
  const tmp = atomicTempPath(file);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeFileSync(fd, content);
    if (options.uid !== undefined || options.gid !== undefined) fs.fchownSync(fd, options.uid ?? -1, options.gid ?? -1);
    fs.fchmodSync(fd, options.mode);
    if (durable) fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (error) {
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  if (!durable) return;
  // The rename is durable once the directory is synced.
  const dirFd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}
