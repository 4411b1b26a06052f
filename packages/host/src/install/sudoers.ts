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
 * until logout. `Set group_source dynamic` in /etc/sudo.conf makes sudo ask NSS at every call. Install adds that
 * line under a marker comment, so uninstall takes out exactly those two lines and the file is back byte for byte.
 *
 * Install (plan.ts) writes the drop-in only where it can work: sudo installed, its policy valid as it is, and
 * /etc/sudoers reading the drop-in directory (@includedir); otherwise it says why and leaves sudo alone.
 */
import * as path from 'node:path';
import { firstLine, HostError, SUDO_LINUX_GROUP } from '@keymaker/core';
import type { HostSystem } from '../system/host-system';

export { SUDO_LINUX_GROUP };

const HEADER =
  '# Written by keymaker install: members of the IAM group keymaker_sudo_iam_group ("keymaker uninstall" removes this)';
/** The comment install puts above its group_source line in sudo.conf (what uninstall looks for). */
const SUDO_CONF_MARKER =
  '# keymaker: sudo asks NSS for groups at every call, so a revoked group ends sudo in open sessions';
const DYNAMIC = 'Set group_source dynamic';

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
export function sudoConfWithDynamicGroups(text: string, file = '/etc/sudo.conf'): SudoConfEdit {
  const existing = text.split('\n').find((line) => /^\s*Set\s+group_source\s/i.test(line));
  if (existing !== undefined) {
    const dynamic = /^\s*Set\s+group_source\s+dynamic\s*$/i.test(existing);
    return dynamic
      ? { text, changed: false }
      : {
          text,
          changed: false,
          note: `${file} has "${existing.trim()}": a user removed from the sudo IAM group keeps sudo in sessions already open until they end`,
        };
  }
  // A last line without its newline keeps it that way, so taking the two lines out gives back the same bytes.
  const lines = `${SUDO_CONF_MARKER}\n${DYNAMIC}`;
  return { text: text === '' || text.endsWith('\n') ? `${text}${lines}\n` : `${text}\n${lines}`, changed: true };
}

/** Takes out the two lines sudoConfWithDynamicGroups added (marker + setting), and nothing else. */
export function removeDynamicGroups(text: string): { text: string; notes: string[] } {
  const lines = text.split('\n');
  const out: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== SUDO_CONF_MARKER) {
      out.push(lines[i]!);
      continue;
    }
    if (lines[i + 1]?.trim() === DYNAMIC) i++;
    else notes.push(`keymaker's comment was no longer above "${DYNAMIC}": removed the comment only`);
  }
  return { text: out.join('\n'), notes };
}

/** Whether the sudoers text reads `dir` (`@includedir` or the older `#includedir`, on a line of its own). */
export function sudoersIncludesDir(sudoers: string, dir: string): boolean {
  const want = path.normalize(dir).replace(/\/$/, '');
  return sudoers.split('\n').some((line) => {
    const m = /^\s*[@#]includedir\s+(\S+)\s*$/.exec(line);
    return !!m && path.normalize(m[1]!).replace(/\/$/, '') === want;
  });
}

/** Where visudo is on this host, undefined when sudo is not installed. */
export function findVisudo(sys: HostSystem): string | undefined {
  return ['/usr/sbin/visudo', '/usr/bin/visudo', '/sbin/visudo'].find((p) => sys.stat(p)?.type === 'file');
}

/** visudo's first complaint, undefined when it accepts. */
export function visudoProblem(sys: HostSystem, args: string[], visudo = 'visudo'): string | undefined {
  const result = sys.run([visudo, ...args], { timeoutMs: 10_000 });
  if (result.code === 0) return undefined;
  return firstLine((result.stderr || result.stdout).trim()) || `visudo exited ${result.code}`;
}

/** sudo on this host, as install's planner needs it. */
export interface SudoOnHost {
  visudo: string;
  /** `visudo -c` rejects the policy as it is (before keymaker touches it). */
  policyProblem?: string;
}

export function sudoOnHost(sys: HostSystem): SudoOnHost | undefined {
  const visudo = findVisudo(sys);
  if (!visudo) return undefined;
  const policyProblem = visudoProblem(sys, ['-c'], visudo);
  return policyProblem ? { visudo, policyProblem } : { visudo };
}

/**
 * `visudo -cf` on the new bytes at a temp name beside `file` (dotted, so @includedir skips it; a stray one is
 * removed by the next install), removed afterwards. Throws what visudo said; changes nothing.
 */
export function checkSudoersCandidate(sys: HostSystem, file: string, content: Buffer | string, visudo = 'visudo') {
  const temp = `${path.dirname(file)}/.keymaker-candidate-${sys.randomName()}`;
  sys.writeFileAtomic(temp, content, 0o440, 0, 0);
  let problem: string | undefined;
  try {
    problem = visudoProblem(sys, ['-cf', temp], visudo);
  } finally {
    sys.removeFile(temp);
  }
  if (problem)
    throw new HostError('SYSTEM_COMMAND_FAILED', `visudo refused the new ${file}, nothing changed: ${problem}`);
}

/** `visudo -c` on the live policy; throws what visudo said. */
export function checkSudoersPolicy(sys: HostSystem, file: string, visudo = 'visudo'): void {
  const problem = visudoProblem(sys, ['-c'], visudo);
  if (problem)
    throw new HostError('SYSTEM_COMMAND_FAILED', `visudo refused the sudo policy with the new ${file}: ${problem}`);
}

export interface WriteSudoersResult {
  /** The bytes that were there before (undefined: no file), for the install journal. */
  previous?: Buffer;
}

/**
 * Switches `path` to `content` (root:root 0440) only if sudo accepts both the file and the whole policy with it;
 * otherwise the machine keeps the old file and the error says why.
 */
export function writeSudoersFile(
  sys: HostSystem,
  file: string,
  content: string,
  visudo = 'visudo',
): WriteSudoersResult {
  const previous = sys.readFile(file);
  checkSudoersCandidate(sys, file, content, visudo);
  sys.writeFileAtomic(file, content, 0o440, 0, 0);
  try {
    checkSudoersPolicy(sys, file, visudo);
  } catch (error) {
    if (previous) sys.writeFileAtomic(file, previous.content, previous.mode, previous.uid, previous.gid);
    else sys.removeFile(file);
    throw new HostError('SYSTEM_COMMAND_FAILED', `${(error as Error).message}; the old one is back`);
  }
  return previous ? { previous: previous.content } : {};
}
