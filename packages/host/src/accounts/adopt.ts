/*
 * `keymaker install --adopt-legacy-accounts` (issue 13, point 4): the accounts
 * that exist on the host from before the record of managed accounts (made by
 * keymaker 1.x, or by this version before the record existed) get no keys and
 * no group sync until they are recorded. Adoption records exactly the existing
 * local accounts whose UID lies in the scheme's range and equals, at that
 * moment, the UID derived from the unique ID of the IAM user their name maps
 * to. It is the administrator's choice: an account a ground UID had already
 * taken over before the upgrade would be adopted too, which is why it is not
 * automatic.
 */
import {
  isInManagedRange,
  isReservedLinuxName,
  linuxUserNameForIamUser,
  type IamUser,
  type UidScheme,
} from '@keymaker/core';
import type { PasswdEntry } from './local-accounts';
import { recordedAccount, type ManagedAccount } from './managed-accounts';

export interface AdoptionOptions {
  uidScheme: UidScheme;
  linuxUserSuffix: string;
  reservedNames?: readonly string[];
  uidFor: (user: IamUser) => number;
}

export interface AdoptionPlan {
  adopt: (ManagedAccount & { iamUserName: string })[];
  /** Existing local accounts named like an IAM user that are not adopted, and why. */
  skipped: { name: string; reason: string }[];
}

export function planAdoption(
  localUsers: readonly PasswdEntry[],
  iamUsers: readonly IamUser[],
  recorded: readonly ManagedAccount[],
  options: AdoptionOptions,
): AdoptionPlan {
  const plan: AdoptionPlan = { adopt: [], skipped: [] };
  const byName = new Map(localUsers.map((user) => [user.name, user]));
  const taken = new Set<string>();
  for (const iamUser of [...iamUsers].sort((a, b) =>
    a.userName < b.userName ? -1 : a.userName > b.userName ? 1 : 0,
  )) {
    const name = linuxUserNameForIamUser(iamUser.userName, options.linuxUserSuffix);
    if (!name) continue;
    const local = byName.get(name);
    if (!local) continue;
    if (taken.has(name)) {
      plan.skipped.push({ name, reason: `more than one IAM user maps to ${name}` });
      plan.adopt = plan.adopt.filter((a) => a.name !== name);
      continue;
    }
    taken.add(name);
    if (isReservedLinuxName(name, options.reservedNames)) {
      plan.skipped.push({ name, reason: 'its name is reserved (a system or package service account)' });
      continue;
    }
    if (!isInManagedRange(local.uid, options.uidScheme)) {
      plan.skipped.push({
        name,
        reason: `uid ${local.uid} is outside the ${options.uidScheme} UID range: not a keymaker account`,
      });
      continue;
    }
    const derived = options.uidFor(iamUser);
    if (derived !== local.uid) {
      plan.skipped.push({
        name,
        reason: `uid ${local.uid}, but IAM user ${iamUser.userName} (${iamUser.userId}) derives uid ${derived}`,
      });
      continue;
    }
    const already = recordedAccount(recorded, local);
    if (already?.iamUserId === iamUser.userId) continue;
    plan.adopt.push({ name, uid: local.uid, iamUserId: iamUser.userId, iamUserName: iamUser.userName });
  }
  return plan;
}
