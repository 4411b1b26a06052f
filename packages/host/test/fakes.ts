// In-memory stand-ins for the host: local accounts/groups, shadow-utils, a mocked IAM.
import { IAMClient } from '@aws-sdk/client-iam';
import { IamDirectory, resolveRoleConfig, unixIdFor, type Resolution, type RoleConfig } from '@keymaker/core';
import type { GroupEntry, LocalAccounts, LocalAdmin, NewAccount, PasswdEntry } from '../src/accounts/local-accounts';
import {
  mergeManagedAccounts,
  type ManagedAccount,
  type ManagedAccountsStore,
  type ManagedGroup,
  type ManagedGroupsStore,
} from '../src/accounts/managed-accounts';

export class FakeHost implements LocalAccounts, LocalAdmin, ManagedAccountsStore, ManagedGroupsStore {
  users_: PasswdEntry[] = [];
  /** keymaker's record of managed accounts (managed-accounts.ts). */
  managed_: ManagedAccount[] = [];
  groups_: GroupEntry[] = [];
  /** Every change, in order, e.g. "groupadd devs 123". */
  changes: string[] = [];
  failOn?: RegExp;

  constructor(init: { users?: [string, number][]; groups?: [string, number, string[]?][] } = {}) {
    for (const [name, uid] of init.users ?? [])
      this.users_.push({ name, uid, gid: uid, gecos: '', home: `/home/${name}`, shell: '/bin/bash' });
    for (const [name, gid, members] of init.groups ?? []) this.groups_.push({ name, gid, members: members ?? [] });
  }

  async user(name: string) {
    return this.users_.find((u) => u.name === name);
  }
  async userByUid(uid: number) {
    return this.users_.find((u) => u.uid === uid);
  }
  async group(name: string) {
    return this.groups_.find((g) => g.name === name);
  }
  async groupByGid(gid: number) {
    return this.groups_.find((g) => g.gid === gid);
  }
  async users() {
    return this.users_.map((u) => ({ ...u }));
  }
  async groups() {
    return this.groups_.map((g) => ({ ...g, members: [...g.members] }));
  }

  private record(change: string) {
    if (this.failOn?.test(change)) throw new Error(`simulated failure: ${change}`);
    this.changes.push(change);
  }
  async addGroup(name: string, gid: number, members: string[] = []) {
    this.record(`groupadd ${name} ${gid}${members.length > 0 ? ` ${members.join(',')}` : ''}`);
    this.groups_.push({ name, gid, members: [...members] });
  }
  async deleteGroup(name: string) {
    this.record(`groupdel ${name}`);
    this.groups_ = this.groups_.filter((g) => g.name !== name);
  }
  async addUser(account: NewAccount) {
    this.record(
      `useradd ${account.name} ${account.uid} ${account.groups.join(',')}${account.privateGroup === 'existing' ? ' (existing private group)' : ''}`,
    );
    if (account.privateGroup === 'create') {
      if (this.groups_.some((g) => g.name === account.name || g.gid === account.gid))
        throw new Error(`useradd: group ${account.name} exists`);
      this.groups_.push({ name: account.name, gid: account.gid, members: [] });
    }
    this.users_.push({
      name: account.name,
      uid: account.uid,
      gid: account.gid,
      gecos: account.comment,
      home: `/home/${account.name}`,
      shell: '/bin/bash',
    });
    for (const g of account.groups) this.groups_.find((x) => x.name === g)!.members.push(account.name);
  }
  async setGroupMembers(group: string, members: string[]) {
    this.record(`members ${group} ${members.join(',')}`);
    this.groups_.find((g) => g.name === group)!.members = [...members];
  }
  async addGroupMember(group: string, member: string) {
    this.record(`gpasswd -a ${member} ${group}`);
    const entry = this.groups_.find((g) => g.name === group);
    if (!entry) throw new Error(`gpasswd: group '${group}' does not exist`);
    if (!entry.members.includes(member)) entry.members.push(member);
  }
  async removeGroupMember(group: string, member: string) {
    this.record(`gpasswd -d ${member} ${group}`);
    const entry = this.groups_.find((g) => g.name === group);
    if (!entry) throw new Error(`gpasswd: group '${group}' does not exist`);
    entry.members = entry.members.filter((m) => m !== member);
  }
  async addSystemGroup(name: string, members: string[] = []) {
    this.record(`groupadd --system ${name}${members.length > 0 ? ` ${members.join(',')}` : ''}`);
    this.groups_.push({ name, gid: 900 + this.groups_.length, members: [...members] });
  }
  /** Names locked with usermod -L -e 1. */
  locked = new Set<string>();
  async lockUser(name: string) {
    this.record(`usermod -L -e 1 ${name}`);
    this.locked.add(name);
  }
  async unlockUser(name: string) {
    this.record(`usermod -U -e '' ${name}`);
    this.locked.delete(name);
  }
  async endSessions(name: string, uid: number) {
    this.record(`end sessions ${name} ${uid}`);
  }
  /** The record of mirrored groups. */
  managedGroups_: ManagedGroup[] = [];
  async readManagedGroups() {
    return this.managedGroups_.map((g) => ({ ...g }));
  }
  async writeManagedGroups(groups: readonly ManagedGroup[]) {
    this.managedGroups_ = groups.map((g) => ({ ...g }));
  }
  members(group: string) {
    return this.groups_.find((g) => g.name === group)?.members;
  }
  async readManaged() {
    return this.managed_.map((a) => ({ ...a }));
  }
  async recordManaged(accounts: ManagedAccount[]) {
    this.managed_ = mergeManagedAccounts(this.managed_, accounts);
  }
  /** Records the existing account `name` as keymaker's for that IAM user ID (as its creation or an adoption does). */
  manage(name: string, iamUserId: string): this {
    const user = this.users_.find((u) => u.name === name);
    if (!user) throw new Error(`no user ${name}`);
    this.managed_ = mergeManagedAccounts(this.managed_, [{ name, uid: user.uid, iamUserId }]);
    return this;
  }
}

export function resolutionFor(iam: IAMClient, config: RoleConfig = {}): Resolution {
  const resolved = resolveRoleConfig(config);
  return {
    source: 'given',
    config: resolved,
    directory: new IamDirectory(iam, resolved),
    crossAccount: false,
    cached: { config: false, credentials: false },
  };
}

export const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAGPgIDME0x9jm0kTTzn2fnt7m5VxINFseJ/ANT8+AZm';

export function newIam(): IAMClient {
  return new IAMClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
}

/** The planner tests' fixtures: the wide scheme, no suffix, no allowed existing groups, and group devs. */
export const wideUid = (id: string) => unixIdFor(id, 'wide');
export const SYNC_OPTIONS = {
  uidScheme: 'wide' as const,
  linuxUserSuffix: '',
  allowedExistingGroups: [] as string[],
  uidFor: (u: { userId: string }) => wideUid(u.userId),
};
export const DEVS_GROUP = {
  groupName: 'keymaker_devs',
  groupId: 'AGPADEVS000000000001',
  linuxName: 'devs',
  gid: wideUid('AGPADEVS000000000001'),
};

/** A membership change without its log subjects (the planner tests compare the changes themselves). */
export function bareChange<T extends { subjects?: unknown }>(change: T): Omit<T, 'subjects'> {
  const { subjects: _subjects, ...rest } = change;
  return rest;
}
