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
 *
 * Revocation (issue 12). Every sync reads the complete list of IAM users
 * allowed on the host (the required group's members, else every user). A
 * recorded account whose IAM unique ID is not in it, or whose IAM user now
 * maps to another Linux name (renamed), is locked (usermod -L -e 1: sshd, su
 * and cron all stop in PAM's account stage), leaves keymaker's groups, and
 * has its sessions and processes ended; its home and files stay, and the
 * record marks it locked. The same unique ID back unlocks it and its groups
 * come back. Nothing is locked or removed on a partial answer: a failed read
 * of the allowed users locks and unlocks nobody, a group whose members could
 * not be read is left as it is, and no IAM group list means no group changes. Every recorded account is kept in
 * keymaker-users (sshd reads no authorized_keys file for that group).
 *
 * Groups whose IAM group is gone: the record of mirrored groups
 * (managed-accounts.ts) keeps each group keymaker mirrored; one no IAM group
 * maps to any more loses its managed members (the group stays, so files keep
 * their name), and an IAM group re-created under that name fills it again.
 *
 * Apply: each change on its own (one gpasswd per member), so one that fails is
 * reported and every other still applies.
 */
import {
  isInManagedRange,
  isKeymakerError,
  isReservedLinuxName,
  linuxUserNameForIamUser,
  type IamDirectory,
  type IamUser,
  type LinuxGroup,
  type Resolution,
  type UidScheme,
} from '@keymaker/core';
import type { GroupEntry, LocalAccounts, LocalAdmin, NewAccount, PasswdEntry } from './local-accounts';
import {
  MANAGED_USERS_GROUP,
  recordedAccount,
  type ManagedAccount,
  type ManagedAccountsStore,
  type ManagedGroup,
  type ManagedGroupsStore,
} from './managed-accounts';

export interface IamGroupState extends LinuxGroup {
  members: IamUser[];
}

export interface IamSyncState {
  groups: IamGroupState[];
  /** Users to pre-provision (authorized, with an active key); undefined when pre-provisioning is off. */
  authorizedUsers?: IamUser[];
  /**
   * Every IAM user allowed on the host (the required group's members, else every user), all pages
   * read. Undefined: no account is locked or unlocked by this plan.
   */
  allowedUsers?: IamUser[];
  /**
   * Linux names of prefixed IAM groups whose members could not be read: left exactly as they are
   * (no member added or removed, not emptied, their record kept).
   */
  unreadGroups?: string[];
  /** The IAM group list itself could not be read: no group is changed, created or emptied. */
  groupsUnknown?: boolean;
  /** What could not be read, one line each (the sync reports them as failures). */
  readFailures?: string[];
}

export interface LocalSyncState {
  users: PasswdEntry[];
  groups: GroupEntry[];
  /** keymaker's record of the accounts it manages; absent: none (no existing account is managed). */
  managed?: readonly ManagedAccount[];
  /** The record of the groups keymaker mirrors; absent: none known. */
  managedGroups?: readonly ManagedGroup[];
}

export interface SyncOptions {
  uidScheme: UidScheme;
  linuxUserSuffix: string;
  allowedExistingGroups: string[];
  /** Derives a user's UID from its IAM unique ID. */
  uidFor: (user: IamUser) => number;
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
  /** The group every recorded account is kept in (keymaker-users); none: not maintained. */
  managedUsersGroup?: string;
  /** The role config's required IAM group, for the reasons the log gives. */
  requiredGroup?: string;
}

/** Who a grant or revocation is about, for the log line. */
export interface Subject {
  user: string;
  uid: number;
  /** The IAM user's name (the last one known, from the account's comment, when she is gone). */
  iamUser: string;
  reason: string;
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
  /** Who each added or removed member is, and why (keyed by Linux name). */
  subjects?: Record<string, Subject>;
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
  /** Accounts whose IAM user is gone: lock, end sessions, mark locked. */
  lock: Subject[];
  /** Locked accounts whose IAM user (same unique ID) is back. */
  unlock: Subject[];
  /** The group every recorded account is kept in, when it must be created first. */
  createUsersGroup?: string;
  /** The new record of mirrored groups, when it changes. */
  managedGroups?: ManagedGroup[];
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
  recorded: readonly Pick<ManagedGroup, 'name' | 'gid'>[] = [],
): GroupVerdict {
  if (byName) {
    if (byName.gid === group.gid && isInManagedRange(group.gid, scheme)) return { kind: 'owned', local: byName };
    // keymaker mirrored this group for an IAM group of that name since deleted: a re-created one fills it again (same GID).
    if (recorded.some((r) => r.name === byName.name && r.gid === byName.gid)) return { kind: 'owned', local: byName };
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

/** The IAM user name an account was made for, from its comment ("keymaker IAM user NAME"), or "-". */
function iamNameOf(account: PasswdEntry): string {
  const m = /^keymaker IAM user (\S+)$/.exec(account.gecos);
  return m ? m[1]! : '-';
}

export function planGroupSync(iam: IamSyncState, local: LocalSyncState, options: SyncOptions): SyncPlan {
  const plan: SyncPlan = {
    createGroups: [],
    createUsers: [],
    memberships: [],
    lock: [],
    unlock: [],
    refused: [],
    skipped: [],
  };
  const usersByName = new Map(local.users.map((user) => [user.name, user]));
  const usersByUid = new Map(local.users.map((user) => [user.uid, user]));
  const groupsByName = new Map(local.groups.map((group) => [group.name, group]));
  const groupsByGid = new Map(local.groups.map((group) => [group.gid, group]));
  const records = [...(local.managed ?? [])];
  const recordedGroups = [...(local.managedGroups ?? [])];
  const managed = (user: PasswdEntry | undefined) =>
    user !== undefined && isInManagedRange(user.uid, options.uidScheme) && recordedAccount(records, user) !== undefined;

  // Revocation first: an account locked now (or still locked) is in no keymaker group below.
  const blocked = new Set<string>();
  const byId = iam.allowedUsers && new Map(iam.allowedUsers.map((user) => [user.userId, user]));
  for (const record of records) {
    const account = usersByName.get(record.name);
    if (!account || !managed(account) || account.uid !== record.uid) continue;
    if (!byId) {
      if (record.locked) blocked.add(record.name);
      continue;
    }
    const user = byId.get(record.iamUserId);
    const mapped = user && linuxNameOf(user, options);
    const subject = { user: record.name, uid: record.uid, iamUser: user?.userName ?? iamNameOf(account) };
    if (user && mapped && 'name' in mapped && mapped.name === record.name && options.uidFor(user) === record.uid) {
      if (record.locked)
        plan.unlock.push({
          ...subject,
          reason: `IAM user ${user.userName} (${user.userId}) is allowed on this host again`,
        });
      continue;
    }
    blocked.add(record.name);
    if (record.locked) continue;
    const reason = user
      ? `IAM user ${record.iamUserId} is now ${user.userName}, which is not ${record.name} (renamed)`
      : options.requiredGroup
        ? `IAM user ${record.iamUserId} is gone or no longer in the required group ${options.requiredGroup}`
        : `no IAM user has the unique ID ${record.iamUserId} any more (deleted or re-created)`;
    plan.lock.push({ ...subject, reason });
  }

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
      recordedGroups,
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
      groups: options.managedUsersGroup ? [options.managedUsersGroup] : [],
      iamUserId: user.userId,
    };
    plan.createUsers.push(account);
    records.push({ name, uid, iamUserId: user.userId });
    const entry = { name, uid, gid: uid, gecos: account.comment, home: `/home/${name}`, shell: '/bin/bash' };
    usersByName.set(name, entry);
    usersByUid.set(uid, entry);
    groupsByGid.set(uid, { name, gid: uid, members: [] });
  }

  // Who a member change is about, for the log.
  const subjectOf = (name: string, reason: string, iamUser?: IamUser): Subject => {
    const account = usersByName.get(name)!;
    return { user: name, uid: account.uid, iamUser: iamUser?.userName ?? iamNameOf(account), reason };
  };
  const pushChange = (
    group: string,
    current: string[],
    wanted: Set<string>,
    why: (name: string, added: boolean) => Subject,
  ) => {
    // Non-managed members (admins added by hand, system users) are always kept.
    const kept = current.filter((name) => !managed(usersByName.get(name)));
    const members = [...new Set([...kept, ...current.filter((name) => wanted.has(name)), ...[...wanted].sort()])];
    const add = [...wanted].filter((name) => !current.includes(name)).sort();
    const remove = current.filter((name) => !members.includes(name));
    if (add.length === 0 && remove.length === 0) return;
    for (const stale of current.filter((name) => !usersByName.has(name)))
      plan.skipped.push({
        user: stale,
        group,
        reason: 'no local account has that name: left as it is (keymaker changes members one by one around it)',
      });
    const subjects: Record<string, Subject> = {};
    for (const name of add) subjects[name] = why(name, true);
    for (const name of remove) subjects[name] = why(name, false);
    plan.memberships.push({ group, members, add, remove, subjects });
  };

  for (const group of iam.groups) {
    const entry = usable.get(group.linuxName);
    if (!entry) continue;
    const wanted = new Map<string, IamUser>();
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
      if (blocked.has(name)) continue; // locked: in no keymaker group
      wanted.set(name, member);
    }
    pushChange(group.linuxName, entry.members, new Set(wanted.keys()), (name, added) =>
      added
        ? subjectOf(name, `member of IAM group ${group.groupName}`, wanted.get(name))
        : subjectOf(
            name,
            blocked.has(name)
              ? `account locked: ${plan.lock.find((l) => l.user === name)?.reason ?? 'its IAM user is gone'}`
              : `not a member of IAM group ${group.groupName}`,
          ),
    );
  }

  // Groups keymaker mirrored whose IAM group no longer maps to them: emptied of managed members.
  const nextRecord = new Map(recordedGroups.map((g) => [g.name, g]));
  for (const group of iam.groups) {
    const entry = usable.get(group.linuxName);
    if (entry)
      nextRecord.set(group.linuxName, {
        name: group.linuxName,
        gid: entry.gid,
        iamGroupId: group.groupId,
        iamGroupName: group.groupName,
      });
  }
  const unread = new Set(iam.unreadGroups ?? []);
  for (const record of recordedGroups) {
    if (iam.groupsUnknown) break; // no IAM group list: none can be said to be gone
    if (usable.has(record.name) || unread.has(record.name)) continue;
    const entry = groupsByName.get(record.name);
    if (!entry || entry.gid !== record.gid) continue;
    pushChange(record.name, entry.members, new Set(), (name) =>
      subjectOf(name, `IAM group ${record.iamGroupName} is gone (deleted or renamed)`),
    );
  }
  const serialized = (groups: Iterable<ManagedGroup>) =>
    JSON.stringify([...groups].sort((a, b) => (a.name < b.name ? -1 : 1)));
  if (serialized(nextRecord.values()) !== serialized(recordedGroups)) plan.managedGroups = [...nextRecord.values()];

  // Every recorded account, locked or not, stays in keymaker-users: sshd never reads its authorized_keys.
  if (options.managedUsersGroup) {
    const name = options.managedUsersGroup;
    const entry = groupsByName.get(name);
    if (!entry) plan.createUsersGroup = name;
    const current = entry?.members ?? [];
    const missing = records
      .filter((r) => !plan.createUsers.some((u) => u.name === r.name))
      .map((r) => usersByName.get(r.name))
      .filter((u): u is PasswdEntry => managed(u) && !current.includes(u!.name))
      .map((u) => u.name)
      .sort();
    if (missing.length > 0) {
      const subjects: Record<string, Subject> = {};
      for (const user of missing) subjects[user] = subjectOf(user, 'keymaker account: authenticates only through IAM');
      plan.memberships.push({ group: name, members: [...current, ...missing], add: missing, remove: [], subjects });
    }
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
 * Reads every prefixed group with all its members (every page; a group is read
 * whole or not at all), the allowed users, and the authorized users when
 * pre-provisioning. A part that fails is named in readFailures and left out;
 * when neither the group list nor the allowed users can be read, it throws.
 */
export async function readIamSyncState(
  directory: IamDirectory,
  options: { preProvision: boolean },
): Promise<IamSyncState> {
  const required = directory.config.requireIamGroup;
  const [groupList, allowed] = await Promise.allSettled([
    directory.listLinuxGroups(),
    // A required group that does not exist (deleted, or a mistyped token) is a definite answer: nobody is allowed.
    required
      ? directory.getGroupMembers(required).catch((error: unknown) => {
          if (isKeymakerError(error, 'NO_SUCH_ENTITY')) return [];
          throw error;
        })
      : directory.listUsers(),
  ]);
  // Nothing readable at all (no credentials, no network): the error itself, and nothing changes.
  if (groupList.status === 'rejected' && allowed.status === 'rejected') throw groupList.reason;
  const readFailures: string[] = [];
  const why = (error: unknown) => (error instanceof Error ? error.message : String(error));
  if (groupList.status === 'rejected') readFailures.push(`reading the IAM groups: ${why(groupList.reason)}`);
  if (allowed.status === 'rejected')
    readFailures.push(
      `reading the IAM users allowed on this host (${required ? `group ${required}` : 'ListUsers'}): ${why(allowed.reason)}; no account was locked or unlocked`,
    );
  // Each group on its own: one that cannot be read is left as it is, the others are still synced.
  const unreadGroups: string[] = [];
  const read = await mapLimit(groupList.status === 'fulfilled' ? groupList.value : [], 8, async (group) => {
    try {
      return { ...group, members: await directory.getGroupMembers(group.groupName) };
    } catch (error) {
      unreadGroups.push(group.linuxName);
      readFailures.push(`reading IAM group ${group.groupName}: ${why(error)}; group ${group.linuxName} left as it is`);
      return undefined;
    }
  });
  const allowedUsers = allowed.status === 'fulfilled' ? allowed.value : undefined;
  let authorizedUsers: IamUser[] | undefined;
  if (options.preProvision && allowedUsers) {
    const keyed = await mapLimit(allowedUsers, 8, async (user) => ({
      user,
      active: (await directory.listSshPublicKeys(user.userName)).some((key) => key.status === 'Active'),
    }));
    authorizedUsers = keyed.filter((entry) => entry.active).map((entry) => entry.user);
  }
  return {
    groups: read.filter((g): g is IamGroupState => g !== undefined),
    authorizedUsers,
    allowedUsers,
    unreadGroups,
    groupsUnknown: groupList.status === 'rejected',
    readFailures,
  };
}

export async function readLocalSyncState(
  accounts: LocalAccounts,
  managed?: ManagedAccountsStore,
  managedGroups?: ManagedGroupsStore,
): Promise<LocalSyncState> {
  const [users, groups, records, groupRecords] = await Promise.all([
    accounts.users(),
    accounts.groups(),
    managed?.readManaged() ?? [],
    managedGroups?.readManagedGroups() ?? [],
  ]);
  return { users, groups, managed: records, managedGroups: groupRecords };
}

export interface ApplyResult {
  done: string[];
  failed: string[];
  /** One line per grant or revocation applied: IAM user, Linux name, UID, reason (for authpriv). */
  audit: string[];
}

const quoted = (text: string) => JSON.stringify(text);
export function auditLine(kind: 'grant' | 'revoke', action: string, s: Subject): string {
  return `${kind} ${action} user=${s.user} uid=${s.uid} iam_user=${s.iamUser} reason=${quoted(s.reason)}`;
}

/**
 * Applies a plan: the record of groups, keymaker-users, new groups, new accounts, locks and
 * unlocks, then every member change one by one. Each step on its own: a failure is reported and
 * the rest still applies (a member change whose group or account failed to appear fails too, alone).
 * Each new account is recorded in `managed` before its useradd (no record: no account is created).
 */
export async function applySyncPlan(
  plan: SyncPlan,
  admin: LocalAdmin,
  managed?: ManagedAccountsStore,
  managedGroups?: ManagedGroupsStore,
): Promise<ApplyResult> {
  const result: ApplyResult = { done: [], failed: [], audit: [] };
  const attempt = async (label: string, step: () => Promise<void>): Promise<boolean> => {
    try {
      await step();
      return true;
    } catch (error) {
      result.failed.push(`${label}: ${(error as Error).message}`);
      return false;
    }
  };
  const step = async (label: string, body: () => Promise<void>, audit?: string[]) => {
    if (!(await attempt(label, body))) return false;
    result.done.push(label);
    if (audit) result.audit.push(...audit);
    return true;
  };

  // Recorded before the groups exist: a group keymaker made is known as keymaker's from then on.
  const groupRecord = plan.managedGroups;
  if (groupRecord && managedGroups)
    await attempt('updating the record of mirrored groups', () => managedGroups.writeManagedGroups(groupRecord));
  // A new group whose members all exist already is created with them in one step (a first sync of 1,000
  // accounts would otherwise run one gpasswd per membership).
  const newUsers = new Set(plan.createUsers.map((u) => u.name));
  const created = new Set([
    ...plan.createGroups.map((g) => g.name),
    ...(plan.createUsersGroup ? [plan.createUsersGroup] : []),
  ]);
  const folded = new Map(
    plan.memberships
      .filter((m) => created.has(m.group) && m.members.every((name) => !newUsers.has(name)))
      .map((m) => [m.group, m]),
  );
  const membershipLabel = (m: Pick<MembershipChange, 'group' | 'add' | 'remove'>) =>
    `group ${m.group}:${m.add.map((n) => ` +${n}`).join('')}${m.remove.map((n) => ` -${n}`).join('')}`;
  const memberAudit = (m: MembershipChange, name: string, added: boolean) => {
    const subject = m.subjects?.[name];
    return subject ? [auditLine(added ? 'grant' : 'revoke', `group=${m.group}`, subject)] : [];
  };
  if (plan.createUsersGroup) {
    const name = plan.createUsersGroup;
    const members = folded.get(name);
    const label = `created group ${name}${members ? `; ${membershipLabel(members)}` : ''}`;
    const audit = members ? members.add.flatMap((member) => memberAudit(members, member, true)) : [];
    await step(label, () => admin.addSystemGroup(name, members?.members), audit);
  }
  for (const g of plan.createGroups) {
    const members = folded.get(g.name);
    const label = `created group ${g.name} (gid ${g.gid})${members ? `; ${membershipLabel(members)}` : ''}`;
    const audit = members ? members.add.flatMap((name) => memberAudit(members, name, true)) : [];
    await step(label, () => admin.addGroup(g.name, g.gid, members?.members), audit);
  }
  for (const u of plan.createUsers) {
    await step(`created account ${u.name} (uid ${u.uid})`, async () => {
      if (!managed) throw new Error('no record of managed accounts to write the account to');
      const { iamUserId, ...account } = u;
      await managed.recordManaged([{ name: u.name, uid: u.uid, iamUserId }]);
      await admin.addUser(account);
    });
  }

  // Locks: the lock first (no new login, su or cron job), then the mark, then her running processes.
  // Each part is tried even when an earlier one failed: as much of the revocation as possible holds.
  for (const s of plan.lock) {
    const label = `locked account ${s.user} (uid ${s.uid}, IAM user ${s.iamUser})`;
    const locked = await attempt(label, () => admin.lockUser(s.user));
    if (locked)
      await attempt(`${label}: marking it locked in the record`, async () => {
        if (!managed) throw new Error('no record of managed accounts');
        const entry = (await managed.readManaged()).find((a) => a.name === s.user && a.uid === s.uid);
        if (entry) await managed.recordManaged([{ ...entry, locked: true }]);
      });
    const ended = await attempt(`ending the sessions of ${s.user} (uid ${s.uid})`, () =>
      admin.endSessions(s.user, s.uid),
    );
    if (locked) {
      result.done.push(`${label}; sessions ${ended ? 'ended' : 'NOT ended'}; home kept`);
      result.audit.push(auditLine('revoke', 'lock', s));
    }
  }
  for (const s of plan.unlock) {
    await step(
      `unlocked account ${s.user} (uid ${s.uid}, IAM user ${s.iamUser})`,
      async () => {
        await admin.unlockUser(s.user);
        if (!managed) throw new Error('no record of managed accounts');
        const entry = (await managed.readManaged()).find((a) => a.name === s.user && a.uid === s.uid);
        if (entry) await managed.recordManaged([{ name: entry.name, uid: entry.uid, iamUserId: entry.iamUserId }]);
      },
      [auditLine('grant', 'unlock', s)],
    );
  }

  // Members one by one: a stale or odd member elsewhere in the group is never handed to gpasswd.
  for (const m of plan.memberships.filter((x) => !folded.has(x.group))) {
    const added: string[] = [];
    const removed: string[] = [];
    for (const name of m.remove) {
      if (await attempt(`group ${m.group}: -${name}`, () => admin.removeGroupMember(m.group, name))) {
        removed.push(name);
        result.audit.push(...memberAudit(m, name, false));
      }
    }
    for (const name of m.add) {
      if (await attempt(`group ${m.group}: +${name}`, () => admin.addGroupMember(m.group, name))) {
        added.push(name);
        result.audit.push(...memberAudit(m, name, true));
      }
    }
    if (added.length > 0 || removed.length > 0)
      result.done.push(membershipLabel({ group: m.group, add: added, remove: removed }));
  }
  return result;
}

export function describePlan(plan: SyncPlan): string[] {
  return [
    ...(plan.createUsersGroup ? [`create group ${plan.createUsersGroup}`] : []),
    ...plan.createGroups.map((g) => `create group ${g.name} (gid ${g.gid}) for IAM group ${g.iamGroupName}`),
    ...plan.createUsers.map((u) => `create account ${u.name} (uid ${u.uid})`),
    ...plan.lock.map((s) => `lock account ${s.user} (uid ${s.uid}, IAM user ${s.iamUser}): ${s.reason}`),
    ...plan.unlock.map((s) => `unlock account ${s.user} (uid ${s.uid}, IAM user ${s.iamUser}): ${s.reason}`),
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
  /** The record of mirrored groups; none: deleted IAM groups are not noticed. */
  managedGroups?: ManagedGroupsStore;
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
  /** The grants and revocations applied (auditLine). */
  audit: string[];
}

/**
 * Read everything, plan, apply (unless dry-run), all under the lock. What could not be read is left
 * as it is and reported as a failure (a group whose members did not come: that group; the allowed
 * users: every lock and unlock); when nothing could be read the error is thrown before any change.
 */
export async function runGroupSync(deps: SyncRunDeps, options: SyncRunOptions): Promise<SyncReport> {
  return deps.lock(async () => {
    const { directory, config } = await deps.resolve();
    const iamState = await readIamSyncState(directory, { preProvision: options.preProvisionAccounts });
    const localState = await readLocalSyncState(deps.accounts, deps.managed, deps.managedGroups);
    const plan = planGroupSync(iamState, localState, {
      uidScheme: config.uidScheme,
      linuxUserSuffix: config.linuxUserSuffix,
      allowedExistingGroups: options.allowedExistingGroups,
      reservedNames: options.reservedNames,
      uidFor: (user) => directory.uidFor(user),
      managedUsersGroup: MANAGED_USERS_GROUP,
      requiredGroup: config.requireIamGroup,
    });
    const base = { refused: plan.refused, skipped: plan.skipped };
    const unread = iamState.readFailures ?? [];
    if (options.dryRun) return { dryRun: true, changes: describePlan(plan), failed: unread, audit: [], ...base };
    const applied = await applySyncPlan(plan, deps.admin, deps.managed, deps.managedGroups);
    return {
      dryRun: false,
      changes: applied.done,
      failed: [...unread, ...applied.failed],
      audit: applied.audit,
      ...base,
    };
  });
}
