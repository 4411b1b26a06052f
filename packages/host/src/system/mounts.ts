/*
 * Whether something is mounted on a directory: its device differs from its parent's (what mountpoint(1) checks
 * first). Enough for the EFS home share, whose mount point is never a bind mount of the same file system.
 */
import * as path from 'node:path';
import type { PathInfo } from './host-system';

export function isMountPoint(stat: (p: string) => PathInfo | undefined, p: string): boolean {
  const here = stat(p);
  const parent = stat(path.dirname(p));
  if (here?.type !== 'dir' || !parent || here.dev === undefined || parent.dev === undefined) return false;
  return here.dev !== parent.dev;
}
