/*
 * sudo from an IAM group (issue 12). The role token keymaker_sudo_iam_group names the IAM group; on the host its
 * members are the members of one keymaker-owned Linux group, SUDO_LINUX_GROUP (served by the agent, or synced in
 * compat mode), so the sudoers rule is static and install writes it once: members get
 * `ALL=(ALL:ALL) NOPASSWD: ALL` (IAM users have no local password, so a prompt would lock them out); an empty group
 * grants nothing. The rule never names an existing sudo/wheel/admin group.
 *
 * Writing follows sudo's own rules for not locking root out: the new bytes go to a temp name containing a "." (so
 * `@includedir` skips it even if we die here), `visudo -cf` checks that file, the rename switches it in, and
 * `visudo -c` checks the whole policy afterwards; if that fails the old bytes (or no file) are put back. Nothing is
 * written when the first check fails.
 *
 * Revocation inside open sessions: sudo by default trusts the session's kernel groups, which keep a removed group
 * until logout. `Set group_source dynamic` in /etc/sudo.conf makes sudo ask NSS at every call.
 */
import { HostError, SUDO_LINUX_GROUP } from '@keymaker/core';
import type { HostSystem } from '../system/host-system';

export { SUDO_LINUX_GROUP };
export const SUDOERS_DROP_IN = '/etc/sudoers.d/keymaker';
export const SUDO_CONF = '/etc/sudo.conf';

const HEADER =
  '# Written by keymaker install: members of the IAM group keymaker_sudo_iam_group ("keymaker uninstall" removes this)';

export function sudoersDropIn(group: string = SUDO_LINUX_GROUP): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(group)) {
    throw new HostError('SYSTEM_COMMAND_FAILED', `sudoers: ${JSON.stringify(group)} is not a Linux group name`);
  }
  return `${HEADER}\n%${group} ALL=(ALL:ALL) NOPASSWD: ALL\n`;
}

export interface SudoConfEdit {
  text: string;
  changed: boolean;
  /** An administrator's own `Set group_source` other than dynamic: left as it is, and said. */
  note?: string;
}

/** Adds `Set group_source dynamic` unless the file already sets group_source (an administrator's choice stays). */
export function sudoConfWithDynamicGroups(text: string): SudoConfEdit {
  const existing = text.split('\n').find((line) => /^\s*Set\s+group_source\s/i.test(line));
  if (existing !== undefined) {
    const dynamic = /^\s*Set\s+group_source\s+dynamic\s*$/i.test(existing);
    return dynamic
      ? { text, changed: false }
      : {
          text,
          changed: false,
          note: `${SUDO_CONF} has "${existing.trim()}": a user removed from the sudo IAM group keeps sudo in sessions already open until they end`,
        };
  }
  const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return {
    text: `${base}# keymaker: sudo asks NSS for groups at every call, so a revoked group ends sudo in open sessions\nSet group_source dynamic\n`,
    changed: true,
  };
}

export interface WriteSudoersResult {
  /** The bytes that were there before (undefined: no file), for the install journal. */
  previous?: Buffer;
}

function visudo(sys: HostSystem, args: string[]): string | undefined {
  const result = sys.run(['visudo', ...args], { timeoutMs: 10_000 });
  if (result.code === 0) return undefined;
  return (result.stderr || result.stdout).trim().split('\n')[0] ?? `visudo exited ${result.code}`;
}

/**
 * Switches `path` to `content` (root:root 0440) only if sudo accepts both the file and the whole policy with it;
 * otherwise the machine keeps the old file and the error says why.
 */
export function writeSudoersFile(sys: HostSystem, path: string, content: string): WriteSudoersResult {
  const previous = sys.readFile(path);
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  const temp = `${dir}/.keymaker-${sys.randomName()}.tmp`;
  sys.writeFileAtomic(temp, content, 0o440, 0, 0);
  const fileProblem = visudo(sys, ['-cf', temp]);
  if (fileProblem) {
    sys.removeFile(temp);
    throw new HostError('SYSTEM_COMMAND_FAILED', `visudo refused the new ${path}, nothing changed: ${fileProblem}`);
  }
  sys.removeFile(temp);
  sys.writeFileAtomic(path, content, 0o440, 0, 0);
  const policyProblem = visudo(sys, ['-c']);
  if (policyProblem) {
    if (previous) sys.writeFileAtomic(path, previous.content, previous.mode, previous.uid, previous.gid);
    else sys.removeFile(path);
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `visudo refused the sudo policy with the new ${path}; the old one is back: ${policyProblem}`,
    );
  }
  return previous ? { previous: previous.content } : {};
}
