import * as path from 'node:path';
import { HostError } from '@keymaker/core';
import type { HostSystem } from '../system/host-system';

/**
 * sshd refuses to run an AuthorizedKeysCommand unless the file's real path and
 * every directory above it are owned by root and not group- or world-writable.
 * The same rule keeps anyone but root from swapping what PAM (as root) and the
 * sync job run. Checked on the real path of everything that will be executed
 * or loaded, before anything is installed, so the failure is a clear message
 * instead of logins that silently stop working.
 */
export interface SafePathTarget {
  path: string;
  /** What it is, for the message: "the Node binary", "the host bundle"... */
  what: string;
  /** The lookup user (not root) must be able to read/execute it: others need r/x on the file and x on every directory. */
  needOthers: 'read' | 'exec' | 'none';
}

export interface SafePathProblem {
  path: string;
  message: string;
}

function components(p: string): string[] {
  const out = ['/'];
  let cur = '/';
  for (const part of p.split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    out.push(cur);
  }
  return out;
}

/**
 * The first problem on the way from / to the real path of target, or
 * undefined. A path that does not exist yet is checked as far as it exists
 * (install creates the rest as root, 0755).
 */
export function safePathProblem(sys: HostSystem, target: SafePathTarget): SafePathProblem | undefined {
  let real: string;
  if (sys.lstat(target.path)) {
    real = sys.realpath(target.path);
  } else {
    // Resolve the deepest existing ancestor; the rest will be created by install.
    let existing = path.dirname(target.path);
    while (!sys.lstat(existing)) existing = path.dirname(existing);
    real = path.join(sys.realpath(existing), path.relative(existing, target.path));
  }
  const via = real === target.path ? '' : ` (real path of ${target.path})`;
  for (const component of components(real)) {
    const st = sys.stat(component);
    if (!st) break;
    const isTarget = component === real;
    const subject = isTarget
      ? `${target.what} ${component}${via}`
      : `${component}, a parent directory of ${target.what} ${real}${via},`;
    const moveHint = 'install Node and keymaker under a root-owned directory such as /usr/local';
    if (st.uid !== 0) {
      return {
        path: component,
        message: `refusing to install: ${subject} is owned by uid ${st.uid}, not root, and sshd refuses to run commands below it (its safe-path rule); ${moveHint}, or fix with chown root ${component}`,
      };
    }
    if (st.mode & 0o022) {
      const sticky = st.type === 'dir' && (st.mode & 0o1000) !== 0;
      const fix = sticky ? moveHint : `${moveHint}, or fix with chmod go-w ${component}`;
      return {
        path: component,
        message: `refusing to install: ${subject} is ${st.mode & 0o002 ? 'world' : 'group'}-writable, and sshd refuses to run commands below it (its safe-path rule); ${fix}`,
      };
    }
    const others = st.mode & 0o007;
    const needed =
      target.needOthers === 'none'
        ? 0
        : isTarget
          ? target.needOthers === 'exec'
            ? 0o005
            : 0o004
          : st.type === 'dir'
            ? 0o001
            : 0;
    if ((others & needed) !== needed) {
      return {
        path: component,
        message: `refusing to install: ${subject} is not ${isTarget ? (target.needOthers === 'exec' ? 'readable and executable' : 'readable') : 'searchable'} by other users (mode ${st.mode.toString(8)}), but the lookup runs as an unprivileged user; ${moveHint}, or fix with chmod o+${isTarget ? (target.needOthers === 'exec' ? 'rx' : 'r') : 'x'} ${component}`,
      };
    }
  }
  return undefined;
}

export function assertSafePaths(sys: HostSystem, targets: SafePathTarget[]): void {
  for (const target of targets) {
    const problem = safePathProblem(sys, target);
    if (problem) throw new HostError('UNSAFE_PATH', problem.message, { details: { path: problem.path } });
  }
}
