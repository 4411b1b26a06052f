/*
 * Group sync (keymaker sync_groups): every IAM group with the prefix becomes
 * a Linux group (prefix stripped, derived GID) whose keymaker-managed
 * members match IAM. Three steps, so a failed read can change nothing:
 * read everything (IAM, then local), plan (pure), apply.
 *
 * Group ownership: keymaker owns a Linux group when its GID equals the GID
 * derived from the IAM group's unique ID (and lies in the managed range).
 * That is stateless (survives reinstalls, and matches groups 1.x created
 * with the legacy scheme), and no system group (sudo 27, wheel 10, adm 4,
 * docker ~999, shadow 42, root 0) can ever match. Any other existing group of
 * that name is refused unless the administrator lists it in
 * HostConfig.allowedExistingGroups.
 *
 * Managed users: local accounts whose UID lies in the scheme's range and that
 * keymaker's record of managed accounts lists with their name and UID
 * (managed-accounts.ts; a matching UID alone is not enough: issue 13, point 4).
 * Only those are ever added to or removed from a group; other members are kept.
 * An IAM member is added only when its local account's UID equals the UID
 * derived from its IAM unique ID and the record names that unique ID (a
 * same-named pre-existing user, or a re-created IAM user, is not it).
 */
import {
  isInManagedRange,
  isReservedLinuxName,
  linuxUserNameForIamUser,
  type IamDirectory,
  type IamUser,
  type LinuxGroup,
  type Resolution,
  type UidScheme,
} from '@keymaker/core';
import type { GroupEntry, LocalAccounts, LocalAdmin, NewAccount, PasswdEntry } from './local-accounts';
import { recordedAccount, type ManagedAccount, type ManagedAccountsStore } from './managed-accounts';

export interface IamGroupState extends LinuxGroup {
  members: IamUser[];
}

export interface IamSyncState {
  groups: IamGroupState[];
  /** Users to pre-provision (authorized, with an active key); undefined when pre-provisioning is off. */
  authorizedUsers?: IamUser[];
}

export interface LocalSyncState {
  users: PasswdEntry[];
  groups: GroupEntry[];
  /** keymaker's record of the accounts it manages; absent: none (no existing account is managed). */
  managed?: readonly ManagedAccount[];
}

export interface SyncOptions {
  uidScheme: UidScheme;
  linuxUserSuffix: string;
  allowedExistingGroups: string[];
  /** Derives a user's UID from its IAM unique ID. */
  uidFor: (user: IamUser) => number;
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
}

export interface GroupToCreate {
  name: string;
  gid: number;
  iamGroupName: string;
}

export interface MembershipChange {
  group: string;
  /** The complete member list to set. */
  members: string[];
  add: string[];
  remove: string[];
}

export interface SyncNotice {
  group?: string;
  user?: string;
  reason: string;
}

/** A pre-provisioned account, with the IAM user ID its record entry gets. */
export interface AccountToCreate extends NewAccount {
  iamUserId: string;
}

export interface SyncPlan {
  createGroups: GroupToCreate[];
  createUsers: AccountToCreate[];
  memberships: MembershipChange[];
  /** Groups keymaker must not touch (not created by it, GID taken...). */
  refused: SyncNotice[];
  /** Users left out (no local account yet, UID mismatch, UID taken...). */
  skipped: SyncNotice[];
}

/** Decision for one IAM group against the local group database. */
export type GroupVerdict =
  { kind: 'owned' | 'allowed'; local: GroupEntry } | { kind: 'create' } | { kind: 'refused'; reason: string };

export function classifyGroup(
  group: Pick<LinuxGroup, 'linuxName' | 'gid'>,
  byName: GroupEntry | undefined,
  byGid: GroupEntry | undefined,
  allowedExistingGroups: readonly string[],
  scheme: UidScheme,
  reservedNames: readonly string[] = [],
): GroupVerdict {
  if (byName) {
    if (byName.gid === group.gid && isInManagedRange(group.gid, scheme)) return { kind: 'owned', local: byName };
    if (allowedExistingGroups.includes(byName.name)) return { kind: 'allowed', local: byName };
    return {
      kind: 'refused',
      reason: `existing group ${byName.name} (gid ${byName.gid}) was not created by keymaker (its gid would be ${group.gid}); to let keymaker manage it, add it to allowedExistingGroups in the host config`,
    };
  }
  if (byGid)
    return {
      kind: 'refused',
      reason: `gid ${group.gid} of group ${group.linuxName} already belongs to group ${byGid.name}`,
    };
  // A package (groupadd -r docker) or sudoers (%admin) would give such a group a meaning keymaker does not control.
  if (isReservedLinuxName(group.linuxName, reservedNames) && !allowedExistingGroups.includes(group.linuxName)) {
    return {
      kind: 'refused',
      reason: `group name ${group.linuxName} is reserved (a system or package group): keymaker does not create it; to have it anyway, add it to allowedExistingGroups in the host config`,
    };
  }
  return { kind: 'create' };
}

/**
 * The private group of a new account: made with the user ('create'), or one a killed run left
 * behind ('existing': the user's name, the user's derived GID, no members, and no account yet), or
 * a conflict with a group that is someone else's.
 */
export function privateGroupFor(
  name: string,
  gid: number,
  byName: GroupEntry | undefined,
  byGid: GroupEntry | undefined,
): { kind: 'create' | 'existing' } | { kind: 'conflict'; holder: GroupEntry } {
  if (!byName && !byGid) return { kind: 'create' };
  if (byName && byGid === byName && byName.gid === gid && byName.members.length === 0) return { kind: 'existing' };
  return { kind: 'conflict', holder: (byGid ?? byName)! };
}

const NO_LINUX_NAME = 'its IAM name has no Linux user name (see the README: names and case)';
const RESERVED = 'its name is reserved (a system or package service account): never given to an IAM user';

/** The IAM user's Linux name, or why it has none a keymaker account may use. */
function linuxNameOf(user: IamUser, options: SyncOptions): { name: string } | { reason: string } {
  const name = linuxUserNameForIamUser(user.userName, options.linuxUserSuffix);
  if (!name) return { reason: NO_LINUX_NAME };
  if (isReservedLinuxName(name, options.reservedNames)) return { reason: RESERVED };
  return { name };
}

export function planGroupSync(iam: IamSyncState, local: LocalSyncState, options: SyncOptions): SyncPlan {
  const plan: SyncPlan = { createGroups: [], createUsers: [], memberships: [], refused: [], skipped: [] };
  const usersByName = new Map(local.users.map((user) => [user.name, user]));
  const usersByUid = new Map(local.users.map((user) => [user.uid, user]));
  const groupsByName = new Map(local.groups.map((group) => [group.name, group]));
  const groupsByGid = new Map(local.groups.map((group) => [group.gid, group]));
  const records = [...(local.managed ?? [])];
  const managed = (user: PasswdEntry | undefined) =>
    user !== undefined && isInManagedRange(user.uid, options.uidScheme) && recordedAccount(records, user) !== undefined;

  // Linux names of the IAM users this sync sees: a new group must not take one (it would block that
  // user's private group at her first login).
  const iamUserNames = new Set<string>();
  for (const user of [...iam.groups.flatMap((group) => group.members), ...(iam.authorizedUsers ?? [])]) {
    const mapped = linuxNameOf(user, options);
    if ('name' in mapped) iamUserNames.add(mapped.name);
  }

  // Which groups sync may use: owned/allowed now, or created by this plan.
  const usable = new Map<string, GroupEntry>();
  for (const group of iam.groups) {
    const verdict = classifyGroup(
      group,
      groupsByName.get(group.linuxName),
      groupsByGid.get(group.gid),
      options.allowedExistingGroups,
      options.uidScheme,
      options.reservedNames,
    );
    if (verdict.kind === 'refused') {
      plan.refused.push({ group: group.linuxName, reason: verdict.reason });
    } else if (verdict.kind === 'create' && (usersByName.has(group.linuxName) || iamUserNames.has(group.linuxName))) {
      plan.refused.push({
        group: group.linuxName,
        reason: `a user is named ${group.linuxName}; a keymaker group never takes a user's name (rename the IAM group)`,
      });
    } else if (verdict.kind === 'create') {
      plan.createGroups.push({ name: group.linuxName, gid: group.gid, iamGroupName: group.groupName });
      const entry = { name: group.linuxName, gid: group.gid, members: [] };
      groupsByName.set(entry.name, entry);
      groupsByGid.set(entry.gid, entry);
      usable.set(group.linuxName, entry);
    } else {
      usable.set(group.linuxName, verdict.local);
    }
  }

  // Pre-provisioned accounts: same rules as the login-time creation.
  for (const user of iam.authorizedUsers ?? []) {
    const mapped = linuxNameOf(user, options);
    if (!('name' in mapped)) {
      plan.skipped.push({ user: user.userName, reason: mapped.reason });
      continue;
    }
    const name = mapped.name;
    if (usersByName.has(name)) continue;
    const uid = options.uidFor(user);
    const holder = usersByUid.get(uid) ?? undefined;
    if (holder) {
      plan.skipped.push({ user: name, reason: `uid ${uid} already belongs to ${holder.name}` });
      continue;
    }
    const privateGroup = privateGroupFor(name, uid, groupsByName.get(name), groupsByGid.get(uid));
    if (privateGroup.kind === 'conflict') {
      plan.skipped.push({
        user: name,
        reason: `its private group (${name}, gid ${uid}) conflicts with group ${privateGroup.holder.name}`,
      });
      continue;
    }
    const account: AccountToCreate = {
      name,
      uid,
      gid: uid,
      privateGroup: privateGroup.kind,
      comment: `keymaker IAM user ${user.userName}`,
      groups: [],
      iamUserId: user.userId,
    };
    plan.createUsers.push(account);
    records.push({ name, uid, iamUserId: user.userId });
    const entry = { name, uid, gid: uid, gecos: account.comment, home: `/home/${name}`, shell: '/bin/bash' };
    usersByName.set(name, entry);
    usersByUid.set(uid, entry);
    groupsByGid.set(uid, { name, gid: uid, members: [] });
  }

  for (const group of iam.groups) {
    const entry = usable.get(group.linuxName);
    if (!entry) continue;
    const wanted = new Set<string>();
    for (const member of group.members) {
      const mapped = linuxNameOf(member, options);
      if (!('name' in mapped)) {
        plan.skipped.push({ user: member.userName, group: group.linuxName, reason: mapped.reason });
        continue;
      }
      const name = mapped.name;
      const account = usersByName.get(name);
      if (!account) continue; // created at first login, then added
      if (
        !managed(account) ||
        account.uid !== options.uidFor(member) ||
        recordedAccount(records, account)!.iamUserId !== member.userId
      ) {
        plan.skipped.push({
          user: name,
          group: group.linuxName,
          reason: `local account ${name} (uid ${account.uid}) is not this IAM user's keymaker account`,
        });
        continue;
      }
      wanted.add(name);
    }
    const current = entry.members;
    // Non-managed members (admins added by hand, system users) are always kept.
    const kept = current.filter((name) => !managed(usersByName.get(name)));
    const members = [...new Set([...kept, ...current.filter((name) => wanted.has(name)), ...[...wanted].sort()])];
    const add = [...wanted].filter((name) => !current.includes(name)).sort();
    const remove = current.filter((name) => !members.includes(name));
    if (add.length > 0 || remove.length > 0) plan.memberships.push({ group: group.linuxName, members, add, remove });
  }
  return plan;
}

/** Bounded parallelism for the per-group / per-user reads. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  });
  await Promise.all(workers);
  return results;
}

/**
 * Reads every prefixed group with all its members (every page), and the
 * authorized users when pre-provisioning. Throws on any failure: the caller
 * then changes nothing.
 */
export async function readIamSyncState(
  directory: IamDirectory,
  options: { preProvision: boolean },
): Promise<IamSyncState> {
  const groups = await directory.listLinuxGroups();
  const withMembers = await mapLimit(groups, 8, async (group) => ({
    ...group,
    members: await directory.getGroupMembers(group.groupName),
  }));
  let authorizedUsers: IamUser[] | undefined;
  if (options.preProvision) {
    const required = directory.config.requireIamGroup;
    const candidates = required ? await directory.getGroupMembers(required) : await directory.listUsers();
    const keyed = await mapLimit(candidates, 8, async (user) => ({
      user,
      active: (await directory.listSshPublicKeys(user.userName)).some((key) => key.status === 'Active'),
    }));
    authorizedUsers = keyed.filter((entry) => entry.active).map((entry) => entry.user);
  }
  return { groups: withMembers, authorizedUsers };
}

export async function readLocalSyncState(
  accounts: LocalAccounts,
  managed?: ManagedAccountsStore,
): Promise<LocalSyncState> {
  const [users, groups, records] = await Promise.all([
    accounts.users(),
    accounts.groups(),
    managed?.readManaged() ?? [],
  ]);
  return { users, groups, managed: records };
}

export interface ApplyResult {
  done: string[];
  failed: string[];
}

/**
 * Applies a plan in order: groups, accounts, memberships. Stops at the first failure. Each new
 * account is recorded in `managed` before its useradd (no record: no account is created).
 */
export async function applySyncPlan(
  plan: SyncPlan,
  admin: LocalAdmin,
  managed?: ManagedAccountsStore,
): Promise<ApplyResult> {
  const done: string[] = [];
  // A new group whose members all exist already is created with them in one step.
  const newUsers = new Set(plan.createUsers.map((u) => u.name));
  const folded = new Map(
    plan.memberships
      .filter(
        (m) => plan.createGroups.some((g) => g.name === m.group) && m.members.every((name) => !newUsers.has(name)),
      )
      .map((m) => [m.group, m]),
  );
  const membershipLabel = (m: SyncPlan['memberships'][number]) =>
    `group ${m.group}:${m.add.map((n) => ` +${n}`).join('')}${m.remove.map((n) => ` -${n}`).join('')}`;
  const steps: [string, () => Promise<void>][] = [
    ...plan.createGroups.map((g): [string, () => Promise<void>] => {
      const members = folded.get(g.name);
      const label = `created group ${g.name} (gid ${g.gid})${members ? `; ${membershipLabel(members)}` : ''}`;
      return [label, () => admin.addGroup(g.name, g.gid, members?.members)];
    }),
    ...plan.createUsers.map((u): [string, () => Promise<void>] => [
      `created account ${u.name} (uid ${u.uid})`,
      async () => {
        if (!managed) throw new Error('no record of managed accounts to write the account to');
        const { iamUserId, ...account } = u;
        await managed.recordManaged([{ name: u.name, uid: u.uid, iamUserId }]);
        await admin.addUser(account);
      },
    ]),
    ...plan.memberships
      .filter((m) => !folded.has(m.group))
      .map((m): [string, () => Promise<void>] => [membershipLabel(m), () => admin.setGroupMembers(m.group, m.members)]),
  ];
  for (const [label, step] of steps) {
    try {
      await step();
      done.push(label);
    } catch (error) {
      return { done, failed: [`${label}: ${(error as Error).message}`] };
    }
  }
  return { done, failed: [] };
}

export function describePlan(plan: SyncPlan): string[] {
  return [
    ...plan.createGroups.map((g) => `create group ${g.name} (gid ${g.gid}) for IAM group ${g.iamGroupName}`),
    ...plan.createUsers.map((u) => `create account ${u.name} (uid ${u.uid})`),
    ...plan.memberships.map(
      (m) => `group ${m.group}:${m.add.map((n) => ` +${n}`).join('')}${m.remove.map((n) => ` -${n}`).join('')}`,
    ),
  ];
}

export interface SyncRunDeps {
  accounts: LocalAccounts;
  admin: LocalAdmin;
  resolve: () => Promise<Resolution>;
  /** Takes the sync lock around the read-plan-apply cycle. */
  lock: <T>(body: () => Promise<T>) => Promise<T>;
  /** keymaker's record of the accounts it manages (read under the lock; written for each new account). */
  managed: ManagedAccountsStore;
}

export interface SyncRunOptions {
  dryRun?: boolean;
  preProvisionAccounts: boolean;
  allowedExistingGroups: string[];
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
}

export interface SyncReport {
  dryRun: boolean;
  /** What was changed (or, with dryRun, would be). */
  changes: string[];
  refused: SyncNotice[];
  skipped: SyncNotice[];
  failed: string[];
}

/** Read everything, plan, apply (unless dry-run), all under the lock. Read failures throw before any change. */
export async function runGroupSync(deps: SyncRunDeps, options: SyncRunOptions): Promise<SyncReport> {
  return deps.lock(async () => {
    const { directory, config } = await deps.resolve();
    const iamState = await readIamSyncState(directory, { preProvision: options.preProvisionAccounts });
    const localState = await readLocalSyncState(deps.accounts, deps.managed);
    const plan = planGroupSync(iamState, localState, {
      uidScheme: config.uidScheme,
      linuxUserSuffix: config.linuxUserSuffix,
      allowedExistingGroups: options.allowedExistingGroups,
      reservedNames: options.reservedNames,
      uidFor: (user) => directory.uidFor(user),
    });
    const base = { refused: plan.refused, skipped: plan.skipped };
    if (options.dryRun) return { dryRun: true, changes: describePlan(plan), failed: [], ...base };
    const applied = await applySyncPlan(plan, deps.admin, deps.managed);
    return { dryRun: false, changes: applied.done, failed: applied.failed, ...base };
  });
}
