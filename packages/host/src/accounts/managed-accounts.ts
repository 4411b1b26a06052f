/*
 * The record of the local accounts keymaker manages (issue 13, point 4):
 * /etc/keymaker/managed-accounts, root:root 0644, one line per account,
 * `NAME:UID:IAM_USER_ID`. A UID equal to the one derived from an IAM user's
 * unique ID does not make an existing local account keymaker's: under the
 * legacy 15-bit scheme an IAM user re-created some 32,000 times gets any UID
 * of the range, a hand-made account's included. keymaker serves an existing
 * account (lookup prints keys, sync manages its groups) only when this record
 * has it with the same name, UID and IAM user ID; the IAM user ID also keeps
 * out an IAM user deleted and re-created under the same name.
 *
 * Written only by root (the PAM hook and the pre-provisioning sync, when they
 * create an account, and `keymaker install --adopt-legacy-accounts`), under the
 * sync lock, atomically. Read by the unprivileged lookup too, so it is checked
 * like the other trusted files: a record another user could change is refused,
 * and then no existing account is managed. Parsed strictly: one line keymaker
 * cannot read refuses the whole record (fail closed).
 *
 * An account whose IAM user is gone (deleted, renamed, out of the required
 * group) is locked by the sync and marked `:locked` (a fourth field): the
 * lookup serves it no keys, and only the same IAM unique ID coming back
 * unlocks it. The same file format, one more file: the Linux groups keymaker
 * mirrors from IAM groups (/etc/keymaker/managed-groups,
 * `NAME:GID:IAM_GROUP_ID:IAM_GROUP_NAME`), so that a group whose IAM group was
 * deleted is still known as keymaker's and emptied.
 */
import { promises as fs } from 'node:fs';
import { HostError, isValidLinuxName } from '@keymaker/core';
import { nodeHostSystem, type HostSystem } from '../system/host-system';
import { assertTrustedFile, lstatPath, type StatPath } from '../system/root-owned';

export interface ManagedAccount {
  name: string;
  uid: number;
  /** The IAM user's unique ID (AIDA...). */
  iamUserId: string;
  /** Locked by the sync because its IAM user is gone: no keys, no groups, no cron, until she is back. */
  locked?: boolean;
}

/** The account keymaker creates or adopts are all in this group; sshd reads no authorized_keys file for it. */
export const MANAGED_USERS_GROUP = 'keymaker-users';

/** Reads and adds to the record; FakeHost implements it in tests. */
export interface ManagedAccountsStore {
  readManaged(): Promise<ManagedAccount[]>;
  /** Adds the account, replacing any entry with its name or its UID (root, under the sync lock). */
  recordManaged(accounts: ManagedAccount[]): Promise<void>;
}

export const MANAGED_ACCOUNTS_HEADER = [
  '# The local accounts keymaker manages: NAME:UID:IAM_USER_ID[:locked], one a line.',
  '# Written by keymaker (PAM hook, sync_groups, install --adopt-legacy-accounts); root:root 0644.',
  '# An existing account not listed here with its UID and IAM user ID gets no IAM keys and no group sync.',
];

// The IAM API pattern of a unique ID ([\w]+, 16-128 characters): AIDA... on AWS, lowercase in emulators.
const IAM_USER_ID = /^[A-Za-z0-9_]{16,128}$/;
const UID = /^[1-9][0-9]{0,9}$/;

function bad(file: string, lineNo: number, why: string): HostError {
  return new HostError(
    'UNSAFE_PATH',
    `${file} line ${lineNo}: ${why}; keymaker manages no existing account until it is fixed (fix it, or run keymaker install --adopt-legacy-accounts)`,
  );
}

export function parseManagedAccounts(text: string, file: string): ManagedAccount[] {
  const lines = text.split('\n');
  if (lines.pop() !== '')
    throw bad(file, lines.length + 1, 'the last line does not end with a newline (a cut-off write?)');
  const out: ManagedAccount[] = [];
  const names = new Set<string>();
  const uids = new Set<number>();
  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.startsWith('#')) return;
    const fields = line.split(':');
    if (fields.length !== 3 && !(fields.length === 4 && fields[3] === 'locked'))
      throw bad(file, lineNo, 'not NAME:UID:IAM_USER_ID[:locked]');
    const [name, uid, iamUserId] = fields as [string, string, string];
    if (!isValidLinuxName(name)) throw bad(file, lineNo, `invalid account name ${JSON.stringify(name.slice(0, 40))}`);
    if (!UID.test(uid) || Number(uid) > 0xfffffffe)
      throw bad(file, lineNo, `invalid uid ${JSON.stringify(uid.slice(0, 20))}`);
    if (!IAM_USER_ID.test(iamUserId))
      throw bad(file, lineNo, `invalid IAM user ID ${JSON.stringify(iamUserId.slice(0, 40))}`);
    if (names.has(name)) throw bad(file, lineNo, `account ${name} is listed twice`);
    if (uids.has(Number(uid))) throw bad(file, lineNo, `uid ${uid} is listed twice`);
    names.add(name);
    uids.add(Number(uid));
    out.push({ name, uid: Number(uid), iamUserId, ...(fields[3] === 'locked' ? { locked: true } : {}) });
  });
  return out;
}

export function serializeManagedAccounts(accounts: readonly ManagedAccount[]): string {
  const sorted = [...accounts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [
    ...MANAGED_ACCOUNTS_HEADER,
    ...sorted.map((a) => `${a.name}:${a.uid}:${a.iamUserId}${a.locked ? ':locked' : ''}`),
    '',
  ].join('\n');
}

/** `current` with `added` in, each replacing any entry with its name or UID (that account is gone). */
export function mergeManagedAccounts(
  current: readonly ManagedAccount[],
  added: readonly ManagedAccount[],
): ManagedAccount[] {
  let out = [...current];
  for (const account of added) {
    out = out.filter((a) => a.name !== account.name && a.uid !== account.uid);
    out.push(account);
  }
  return out;
}

/** The record entry that makes this existing account keymaker's, if any (same name and UID). */
export function recordedAccount(
  records: readonly ManagedAccount[],
  local: { name: string; uid: number },
): ManagedAccount | undefined {
  return records.find((r) => r.name === local.name && r.uid === local.uid);
}

/** The record as the lookup and the root commands read it: trusted-file rules, then strict parsing; missing = empty. */
export async function readManagedAccounts(file: string, stat: StatPath = lstatPath): Promise<ManagedAccount[]> {
  await assertTrustedFile({ path: file, fixOwner: 'root:root', fixMode: '644' }, stat);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return parseManagedAccounts(text, file);
}

export interface FileManagedAccountsOptions {
  stat?: StatPath;
  /** The atomic writer (install's HostSystem); the real one by default. */
  sys?: Pick<HostSystem, 'writeFileAtomic'>;
}

/** The record in a file. Writers must hold the sync lock (read-merge-write). */
export function fileManagedAccounts(file: string, options: FileManagedAccountsOptions = {}): ManagedAccountsStore {
  return {
    readManaged: () => readManagedAccounts(file, options.stat),
    async recordManaged(accounts) {
      if (accounts.length === 0) return;
      const merged = mergeManagedAccounts(await readManagedAccounts(file, options.stat), accounts);
      const text = serializeManagedAccounts(merged);
      // Never write what the readers would refuse (that would unmanage every account).
      parseManagedAccounts(text, `the record keymaker would write to ${file}`);
      (options.sys ?? nodeHostSystem()).writeFileAtomic(file, text, 0o644, 0, 0);
    },
  };
}

/** A Linux group keymaker mirrors from an IAM group (created by it, or one the administrator allowed). */
export interface ManagedGroup {
  name: string;
  gid: number;
  iamGroupId: string;
  iamGroupName: string;
}

export interface ManagedGroupsStore {
  readManagedGroups(): Promise<ManagedGroup[]>;
  /** Replaces the whole record (root, under the sync lock). */
  writeManagedGroups(groups: readonly ManagedGroup[]): Promise<void>;
}

const IAM_GROUP_NAME = /^[A-Za-z0-9+=,.@_-]{1,128}$/;

export function parseManagedGroups(text: string, file: string): ManagedGroup[] {
  const lines = text.split('\n');
  if (lines.pop() !== '')
    throw bad(file, lines.length + 1, 'the last line does not end with a newline (a cut-off write?)');
  const out: ManagedGroup[] = [];
  lines.forEach((line, i) => {
    if (line.startsWith('#')) return;
    const [name, gid, iamGroupId, iamGroupName, ...rest] = line.split(':');
    if (rest.length > 0 || iamGroupName === undefined)
      throw bad(file, i + 1, 'not NAME:GID:IAM_GROUP_ID:IAM_GROUP_NAME');
    if (!isValidLinuxName(name!)) throw bad(file, i + 1, `invalid group name ${JSON.stringify(name!.slice(0, 40))}`);
    if (!UID.test(gid!) || Number(gid) > 0xfffffffe) throw bad(file, i + 1, `invalid gid ${JSON.stringify(gid)}`);
    if (!IAM_USER_ID.test(iamGroupId!)) throw bad(file, i + 1, 'invalid IAM group ID');
    if (!IAM_GROUP_NAME.test(iamGroupName)) throw bad(file, i + 1, 'invalid IAM group name');
    if (out.some((g) => g.name === name)) throw bad(file, i + 1, `group ${name} is listed twice`);
    out.push({ name: name!, gid: Number(gid), iamGroupId: iamGroupId!, iamGroupName });
  });
  return out;
}

export function serializeManagedGroups(groups: readonly ManagedGroup[]): string {
  const sorted = [...groups].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [
    '# The Linux groups keymaker mirrors from IAM groups: NAME:GID:IAM_GROUP_ID:IAM_GROUP_NAME, one a line.',
    '# Written by sync_groups; a group whose IAM group is gone loses its keymaker-managed members.',
    ...sorted.map((g) => `${g.name}:${g.gid}:${g.iamGroupId}:${g.iamGroupName}`),
    '',
  ].join('\n');
}

/** The record of mirrored groups in a file (read by root only; the same trusted-file rules). */
export function fileManagedGroups(file: string, options: FileManagedAccountsOptions = {}): ManagedGroupsStore {
  return {
    async readManagedGroups() {
      await assertTrustedFile({ path: file, fixOwner: 'root:root', fixMode: '644' }, options.stat);
      try {
        return parseManagedGroups(await fs.readFile(file, 'utf8'), file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    },
    async writeManagedGroups(groups) {
      const text = serializeManagedGroups(groups);
      parseManagedGroups(text, `the record keymaker would write to ${file}`);
      (options.sys ?? nodeHostSystem()).writeFileAtomic(file, text, 0o644, 0, 0);
    },
  };
}
