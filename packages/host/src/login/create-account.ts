/*
 * Just-in-time account creation, run by pam_exec (as root) in sshd's PAM auth
 * stage for a login name that has no local account yet. The account is created
 * only for a confirmed IAM user: it exists, has at least one active valid key,
 * and passes the required group. The connection that creates the account
 * still fails (sshd looked the user up before PAM ran); the next one logs in.
 */
import { AwsError, assertLinuxUserName, assertNotReservedName, HostError, type Resolution } from '@keymaker/core';
import type { LocalAccounts, LocalAdmin, NewAccount } from '../accounts/local-accounts';
import { MANAGED_USERS_GROUP, type ManagedAccountsStore } from '../accounts/managed-accounts';
import type { LoginGuard } from './pam-guard';
import { classifyGroup, privateGroupFor } from '../accounts/group-sync';

export interface CreateAccountDeps {
  accounts: LocalAccounts;
  admin: LocalAdmin;
  resolve: () => Promise<Resolution>;
  /** Serialises shadow-utils changes with a running group sync. */
  lock: <T>(body: () => Promise<T>) => Promise<T>;
  /** Negative cache and rate limit around the IAM lookup (pam-guard.ts); none in tests that do not need it. */
  guard?: LoginGuard;
  /** keymaker's record of the accounts it manages: a created account is recorded (under the lock) before useradd. */
  managed: ManagedAccountsStore;
  /**
   * Homes on EFS: checked before anything is made (the share must be mounted, else no account: fail closed), and
   * run once the account exists to make its home (accounts/efs-home.ts); what it throws refuses the login.
   */
  efsHome?: { assertReady: () => void; make: (account: { name: string; uid: number; gid: number }) => string };
}

export interface CreateAccountOptions {
  allowedExistingGroups: string[];
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
  /** The client's address (PAM_RHOST): the guard limits each source on its own. */
  source?: string;
}

export type CreateAccountOutcome =
  | { kind: 'exists'; name: string }
  | {
      kind: 'created';
      name: string;
      uid: number;
      iamUserName: string;
      groups: string[];
      skippedGroups: string[];
      /** Homes on EFS: what the home step did ("created by user", "exists"). */
      home?: string;
    };

/** Validates the name, refuses existing accounts, confirms the IAM user, then creates the account. */
export async function createAccountForLogin(
  user: string,
  deps: CreateAccountDeps,
  options: CreateAccountOptions,
): Promise<CreateAccountOutcome> {
  const name = assertLinuxUserName(user);
  if (await deps.accounts.user(name)) return { kind: 'exists', name };
  // A package's service account name is never created for an IAM user (before any IAM call).
  assertNotReservedName(name, options.reservedNames);
  deps.efsHome?.assertReady();

  // Past this point every attempt costs IAM calls: remembered refusals and the rate limit come first.
  await deps.guard?.admit(name, options.source);
  let confirmed: Awaited<ReturnType<typeof confirmIamUser>>;
  try {
    confirmed = await confirmIamUser(name, deps);
  } catch (error) {
    await deps.guard?.settle(name, error).catch(() => undefined);
    throw error;
  }
  await deps.guard?.settle(name, undefined).catch(() => undefined);
  const { directory, authorized, iamGroups } = confirmed;
  const uid = directory.uidFor(authorized.user!);

  return deps.lock(async () => {
    // Checked again under the lock: a sync may have just created it.
    if (await deps.accounts.user(name)) return { kind: 'exists', name } as const;
    const [uidHolder, gidHolder, sameNameGroup] = await Promise.all([
      deps.accounts.userByUid(uid),
      deps.accounts.groupByGid(uid),
      deps.accounts.group(name),
    ]);
    if (uidHolder) {
      throw new HostError(
        'UID_CONFLICT',
        `uid ${uid} of IAM user ${authorized.iamUserName} already belongs to local account ${uidHolder.name}; no account created for ${name}`,
        {
          details: { uid, holder: uidHolder.name },
        },
      );
    }
    const privateGroup = privateGroupFor(name, uid, sameNameGroup, gidHolder);
    if (privateGroup.kind === 'conflict') {
      const { holder } = privateGroup;
      throw new HostError(
        'UID_CONFLICT',
        `the private group of ${name} (gid ${uid}) conflicts with existing group ${holder.name} (gid ${holder.gid}); no account created`,
        {
          details: { uid, holder: holder.name },
        },
      );
    }

    // Supplementary groups: same ownership rules as sync; refused groups are left out, not fatal.
    const groups: string[] = [];
    const skippedGroups: string[] = [];
    const toCreate: { name: string; gid: number }[] = [];
    for (const group of iamGroups) {
      const [byName, byGid] = await Promise.all([
        deps.accounts.group(group.linuxName),
        deps.accounts.groupByGid(group.gid),
      ]);
      const verdict = classifyGroup(
        group,
        byName,
        byGid,
        options.allowedExistingGroups,
        directory.config.uidScheme,
        options.reservedNames,
      );
      if (verdict.kind === 'refused') {
        skippedGroups.push(`${group.linuxName}: ${verdict.reason}`);
        continue;
      }
      if (verdict.kind === 'create') {
        // A new supplementary group named after this user or another local account would take that
        // name's private group (or mislead every tool that shows it): never created.
        if (group.linuxName === name || (await deps.accounts.user(group.linuxName))) {
          skippedGroups.push(`${group.linuxName}: a user has that name; a keymaker group never takes a user's name`);
          continue;
        }
        toCreate.push({ name: group.linuxName, gid: group.gid });
      }
      groups.push(group.linuxName);
    }
    for (const group of toCreate) await deps.admin.addGroup(group.name, group.gid);
    // Every keymaker account is in keymaker-users: sshd reads no authorized_keys file for it (only IAM keys count).
    if (!(await deps.accounts.group(MANAGED_USERS_GROUP))) await deps.admin.addSystemGroup(MANAGED_USERS_GROUP);

    // One useradd makes the user and the private group; an interrupted older run's group is reused.
    const account: NewAccount = {
      name,
      uid,
      gid: uid,
      privateGroup: privateGroup.kind,
      comment: `keymaker IAM user ${authorized.iamUserName}`,
      groups: [MANAGED_USERS_GROUP, ...groups],
    };
    // Recorded first: an account made but not recorded would never be served. An entry whose useradd
    // then failed names no account; the next connection's creation makes it and finds it in place.
    await deps.managed.recordManaged([{ name, uid, iamUserId: authorized.user!.userId }]);
    await deps.admin.addUser(account);
    const home = deps.efsHome?.make({ name, uid, gid: uid });
    return {
      kind: 'created',
      name,
      uid,
      iamUserName: authorized.iamUserName,
      groups,
      skippedGroups,
      ...(home ? { home } : {}),
    } as const;
  });
}

/** The IAM user exists, passes the required group and has an active, valid key. */
async function confirmIamUser(name: string, deps: CreateAccountDeps) {
  const { directory } = await deps.resolve();
  const [authorized, iamGroups] = await Promise.all([
    directory.authorizedKeys(name, { includeUser: true }),
    directory.linuxGroupsForUser(directory.iamUserNameFor(name)),
  ]);
  if (authorized.keys.length === 0) {
    throw new AwsError(
      'NO_SUCH_KEY',
      `IAM user ${authorized.iamUserName} has no active, valid SSH key; no account created`,
    );
  }
  return { directory, authorized, iamGroups };
}

/**
 * What the person at the ssh prompt sees (pam_exec "stdout"), for EVERY name
 * the hook is asked about in the auth stage, whatever happened: created,
 * refused, rate-limited, already existing, invalid, failed. The hook runs
 * before authentication, so anything that depended on the outcome would tell
 * an unauthenticated client which names are IAM users with an active key
 * (issue 13, point 12). The decision goes to syslog only.
 */
export const FIRST_LOGIN_MESSAGE =
  'keymaker: the first connection of an IAM user allowed on this host creates their account and fails (SSH looked the user up before it existed): if this was yours, connect again.';
/** The 1.x-era name of FIRST_LOGIN_MESSAGE. */
export const ACCOUNT_CREATED_MESSAGE = FIRST_LOGIN_MESSAGE;

/** Exit codes of pam_create_account that are not errors (1.x used the same two). */
export const PAM_EXIT_CREATED = 75;
export const PAM_EXIT_EXISTS = 77;
