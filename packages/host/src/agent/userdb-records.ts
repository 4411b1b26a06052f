// Pure: resolved identities -> systemd userdb JSON records (docs/USER_RECORD.md, docs/GROUP_RECORD.md,
// docs/USER_GROUP_API.md in systemd). No I/O here; the Varlink service sends what these return.
import * as path from 'node:path';
import { isValidLinuxName } from '@keymaker/core';

/** A managed user as the agent resolved it (from IAM, a cache or a snapshot). */
export interface ResolvedUser {
  /** Linux login name (lower-case, valid). */
  linuxName: string;
  uid: number;
  /** Primary GID: keymaker's private group has GID = UID. */
  gid: number;
  /** The IAM user behind the login, shown as the GECOS/real name. */
  iamUserName: string;
  /** Home base, e.g. /home: the home is `<homeBase>/<linuxName>`. */
  homeBase: string;
  /** Login shell, absolute. */
  shell: string;
}

/** A Linux group served by the agent (an IAM group with the prefix stripped, or a synthesized one). */
export interface ResolvedGroup {
  linuxName: string;
  gid: number;
  /** Linux names of the managed members. */
  members: readonly string[];
}

export type UserdbRecord = Record<string, unknown>;

export interface UserRecord extends UserdbRecord {
  userName: string;
  uid: number;
  gid: number;
  realName: string;
  homeDirectory: string;
  shell: string;
  disposition: 'regular';
  service: string;
}

export interface GroupRecord extends UserdbRecord {
  groupName: string;
  gid: number;
  members?: string[];
  disposition: 'regular';
  service: string;
}

export interface MembershipRecord {
  userName: string;
  groupName: string;
}

/** Highest valid UID/GID: (uid_t)-1 is "invalid" and (uint16)-1 is refused by systemd too. */
const ID_MAX = 0xfffffffe;

export function isValidUnixId(id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= ID_MAX && id !== 0xffff;
}

/** Fails loudly: a record that NSS would mangle (a name with ':' or a relative home) is a bug upstream. */
function check(condition: boolean, what: string): void {
  if (!condition) throw new TypeError(`userdb record: ${what}`);
}

/** GECOS must not carry ':' or a newline (passwd's field separators). */
function gecosSafe(text: string): string {
  return text.replace(/[:\n\r\0]/g, ' ');
}

/**
 * The user record: what getpwnam/getpwuid/getspnam return. No `privileged` section, so the shadow
 * hash is `!*` (no password login) and the record is complete (`incomplete: false`).
 */
export function userRecord(user: ResolvedUser, service: string): UserRecord {
  check(isValidLinuxName(user.linuxName), `invalid user name ${JSON.stringify(user.linuxName)}`);
  check(isValidUnixId(user.uid), `invalid uid ${user.uid}`);
  check(isValidUnixId(user.gid), `invalid gid ${user.gid}`);
  check(
    path.posix.isAbsolute(user.homeBase) && !user.homeBase.includes(':'),
    `invalid home base ${JSON.stringify(user.homeBase)}`,
  );
  check(path.posix.isAbsolute(user.shell) && !user.shell.includes(':'), `invalid shell ${JSON.stringify(user.shell)}`);
  check(service.length > 0, 'empty service name');
  return {
    userName: user.linuxName,
    uid: user.uid,
    gid: user.gid,
    realName: gecosSafe(user.iamUserName),
    homeDirectory: path.posix.join(path.posix.normalize(user.homeBase), user.linuxName),
    shell: user.shell,
    disposition: 'regular',
    service,
  };
}

/** The group record: getgrnam/getgrgid (nss-systemd adds the members GetMemberships reports). */
export function groupRecord(group: ResolvedGroup, service: string): GroupRecord {
  check(isValidLinuxName(group.linuxName), `invalid group name ${JSON.stringify(group.linuxName)}`);
  check(isValidUnixId(group.gid), `invalid gid ${group.gid}`);
  check(service.length > 0, 'empty service name');
  const members = validMembers(group);
  return {
    groupName: group.linuxName,
    gid: group.gid,
    ...(members.length > 0 ? { members } : {}),
    disposition: 'regular',
    service,
  };
}

/** keymaker's private group of a user (same name, GID = the user's primary GID), no members. */
export function privateGroupOf(user: ResolvedUser): ResolvedGroup {
  return { linuxName: user.linuxName, gid: user.gid, members: [] };
}

/** Members that are valid names, sorted and without duplicates (a bad name never reaches NSS). */
function validMembers(group: ResolvedGroup): string[] {
  return [...new Set(group.members)].filter(isValidLinuxName).sort();
}

/** One record per (user, group) pair: the GetMemberships replies for a group. */
export function membershipsOfGroup(group: ResolvedGroup): MembershipRecord[] {
  return validMembers(group).map((userName) => ({ userName, groupName: group.linuxName }));
}

/** The GetMemberships replies for a user, from the names of the groups she is in. */
export function membershipsOfUser(userName: string, groupNames: readonly string[]): MembershipRecord[] {
  if (!isValidLinuxName(userName)) return [];
  return [...new Set(groupNames)]
    .filter(isValidLinuxName)
    .sort()
    .map((groupName) => ({ userName, groupName }));
}

/** Reply parameters of GetUserRecord / GetGroupRecord. */
export function recordReply(record: UserdbRecord): { record: UserdbRecord; incomplete: boolean } {
  return { record, incomplete: false };
}
