/*
 * The IAM side of a login: users, their SSH keys and the groups they are in, as the role config's naming rules
 * see them. Every listing reads all pages and every answer is shape-checked before anyone trusts it.
 */
import {
  GetGroupCommand,
  GetSSHPublicKeyCommand,
  GetUserCommand,
  ListGroupsCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
  ListUsersCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { awsCall, collectPages, requireArray, requireString, unexpectedAnswer, type MissingEntity } from './aws';
import { AccessRefusedError, isKeymakerError } from './errors';
import { iamUserNameForLinuxUser, linuxNameOfIamGroup, linuxUserNameForIamUser } from './names';
import type { ResolvedRoleConfig } from './role-config';
import { parseSshPublicKey, type SshPublicKey } from './ssh-key';
import { unixIdFor } from './uid';

export interface IamUser {
  userName: string;
  userId: string;
  arn?: string;
}

export interface IamGroup {
  groupName: string;
  groupId: string;
}

export interface LinuxGroup extends IamGroup {
  /** Linux group name: the IAM name with the prefix stripped. */
  linuxName: string;
  gid: number;
}

export interface SshKeySummary {
  keyId: string;
  status: 'Active' | 'Inactive';
  uploadDate?: Date;
}

export interface RejectedKey {
  keyId: string;
  reason: string;
}

export interface AuthorizedKeys {
  linuxName: string;
  iamUserName: string;
  keys: SshPublicKey[];
  /** Active keys that were dropped, with the reason (bad body, vanished, changed status). */
  rejected: RejectedKey[];
  /** Present when requested with includeUser. */
  user?: IamUser;
  /** The active keys whose bodies came from IAM in this lookup (not from knownBody): what a cache may store. */
  fetched: FetchedKey[];
  /** How many printed or rejected active keys took their body from knownBody (no GetSSHPublicKey). */
  knownBodies: number;
}

export interface FetchedKey {
  keyId: string;
  key: SshPublicKey;
}

export interface LookupOptions {
  /** Also fetch the IAM user (in parallel with the key list) for its unique ID. */
  includeUser?: boolean;
  /**
   * A body already known for (IAM user, key ID): IAM never changes the body of a key ID, only its status, so
   * a body stored earlier can stand in for GetSSHPublicKey. Asked only for the IDs this lookup's key list names
   * as Active, so status and deletion stay live. The caller validates what it returns (parseSshPublicKey).
   * It may answer with a promise: a store read started with the key list then costs the lookup no time.
   */
  knownBody?: (iamUserName: string, keyId: string) => SshPublicKey | undefined | Promise<SshPublicKey | undefined>;
}

/**
 * The IAM account that holds users, keys and groups (the instance's own, or
 * the ID-resolver account), seen through the role config's naming rules.
 * Every listing reads all pages; every answer is shape-checked.
 */
export class IamDirectory {
  constructor(
    readonly iam: IAMClient,
    readonly config: ResolvedRoleConfig,
  ) {}

  /** Linux login -> IAM user name; throws INVALID_USERNAME before any call. */
  iamUserNameFor(linuxName: string): string {
    return iamUserNameForLinuxUser(linuxName, this.config.linuxUserSuffix);
  }

  linuxNameFor(iamUserName: string): string | undefined {
    return linuxUserNameForIamUser(iamUserName, this.config.linuxUserSuffix);
  }

  uidFor(user: IamUser): number {
    return unixIdFor(user.userId, this.config.uidScheme);
  }

  async getUser(iamUserName: string): Promise<IamUser> {
    const out = await this.call('GetUser', iamUserName, () =>
      this.iam.send(new GetUserCommand({ UserName: iamUserName })),
    );
    const user = out.User;
    if (!user) throw unexpectedAnswer('GetUser', 'no User');
    const userName = requireString(user.UserName, 'GetUser', 'UserName');
    // IAM names are case-insensitive; any other difference means a wrong answer.
    if (userName.toLowerCase() !== iamUserName.toLowerCase()) throw unexpectedAnswer('GetUser', 'a different user');
    return { userName, userId: requireString(user.UserId, 'GetUser', 'UserId'), arn: user.Arn };
  }

  async listSshPublicKeys(iamUserName: string): Promise<SshKeySummary[]> {
    const keys = await collectPages('ListSSHPublicKeys', async (marker) => {
      const out = await this.call('ListSSHPublicKeys', iamUserName, () =>
        this.iam.send(new ListSSHPublicKeysCommand({ UserName: iamUserName, Marker: marker })),
      );
      return {
        items: requireArray(out.SSHPublicKeys, 'ListSSHPublicKeys', 'SSHPublicKeys'),
        isTruncated: out.IsTruncated,
        marker: out.Marker,
      };
    });
    return keys.map((key) => {
      const keyId = requireString(key.SSHPublicKeyId, 'ListSSHPublicKeys', 'SSHPublicKeyId');
      if (key.Status !== 'Active' && key.Status !== 'Inactive')
        throw unexpectedAnswer('ListSSHPublicKeys', 'unknown key status');
      return { keyId, status: key.Status, uploadDate: key.UploadDate instanceof Date ? key.UploadDate : undefined };
    });
  }

  /** One key body, validated; undefined (with the reason) when it must not be used. */
  async getActiveKey(iamUserName: string, keyId: string): Promise<{ key?: SshPublicKey; reason?: string }> {
    let out;
    try {
      out = await this.call('GetSSHPublicKey', iamUserName, () =>
        this.iam.send(new GetSSHPublicKeyCommand({ UserName: iamUserName, SSHPublicKeyId: keyId, Encoding: 'SSH' })),
      );
    } catch (error) {
      // Deleted between the list and the get: the key is simply gone.
      if (isKeymakerError(error, 'NO_SUCH_KEY')) return { reason: 'key no longer exists' };
      throw error;
    }
    const key = out.SSHPublicKey;
    if (!key) throw unexpectedAnswer('GetSSHPublicKey', 'no SSHPublicKey');
    if (key.SSHPublicKeyId !== keyId) return { reason: 'answer is for another key' };
    if (typeof key.UserName !== 'string' || key.UserName.toLowerCase() !== iamUserName.toLowerCase()) {
      return { reason: 'answer is for another user' };
    }
    if (key.Status !== 'Active') return { reason: 'key is not active' };
    const parsed = parseSshPublicKey(key.SSHPublicKeyBody);
    return parsed.ok ? { key: parsed.key } : { reason: parsed.reason };
  }

  async listGroupsForUser(iamUserName: string): Promise<IamGroup[]> {
    const groups = await collectPages('ListGroupsForUser', async (marker) => {
      const out = await this.call('ListGroupsForUser', iamUserName, () =>
        this.iam.send(new ListGroupsForUserCommand({ UserName: iamUserName, Marker: marker })),
      );
      return {
        items: requireArray(out.Groups, 'ListGroupsForUser', 'Groups'),
        isTruncated: out.IsTruncated,
        marker: out.Marker,
      };
    });
    return groups.map((group) => toIamGroup(group, 'ListGroupsForUser'));
  }

  /** The user's IAM groups that carry the prefix, as Linux groups. */
  async linuxGroupsForUser(iamUserName: string): Promise<LinuxGroup[]> {
    return this.toLinuxGroups(await this.listGroupsForUser(iamUserName));
  }

  async listGroups(): Promise<IamGroup[]> {
    const groups = await collectPages('ListGroups', async (marker) => {
      const out = await awsCall('ListGroups', () => this.iam.send(new ListGroupsCommand({ Marker: marker })));
      return {
        items: requireArray(out.Groups, 'ListGroups', 'Groups'),
        isTruncated: out.IsTruncated,
        marker: out.Marker,
      };
    });
    return groups.map((group) => toIamGroup(group, 'ListGroups'));
  }

  /** Every IAM group with the prefix, as Linux groups (prefix stripped, derived GID). */
  async listLinuxGroups(): Promise<LinuxGroup[]> {
    return this.toLinuxGroups(await this.listGroups());
  }

  async getGroupMembers(groupName: string): Promise<IamUser[]> {
    const users = await collectPages('GetGroup', async (marker) => {
      const out = await awsCall('GetGroup', () =>
        this.iam.send(new GetGroupCommand({ GroupName: groupName, Marker: marker })),
      );
      return { items: requireArray(out.Users, 'GetGroup', 'Users'), isTruncated: out.IsTruncated, marker: out.Marker };
    });
    return users.map(toIamUser('GetGroup'));
  }

  async listUsers(): Promise<IamUser[]> {
    const users = await collectPages('ListUsers', async (marker) => {
      const out = await awsCall('ListUsers', () => this.iam.send(new ListUsersCommand({ Marker: marker })));
      return { items: requireArray(out.Users, 'ListUsers', 'Users'), isTruncated: out.IsTruncated, marker: out.Marker };
    });
    return users.map(toIamUser('ListUsers'));
  }

  /**
   * The login-time lookup: the active, valid keys of the IAM user behind a
   * Linux login. Two sequential round trips: the key list (with the group
   * check and, optionally, the user in parallel), then the key bodies not
   * known already (options.knownBody) at once; none to fetch, no second trip.
   * Throws NOT_IN_REQUIRED_GROUP, NO_SUCH_USER or an AWS error: never a
   * partial answer.
   */
  async authorizedKeys(linuxName: string, options: LookupOptions = {}): Promise<AuthorizedKeys> {
    const iamUserName = this.iamUserNameFor(linuxName);
    const required = this.config.requireIamGroup;
    const [summaries, groups, user] = await Promise.all([
      this.listSshPublicKeys(iamUserName),
      required ? this.listGroupsForUser(iamUserName) : undefined,
      options.includeUser ? this.getUser(iamUserName) : undefined,
    ]);
    if (required && !groups!.some((group) => group.groupName === required)) {
      throw new AccessRefusedError(
        'NOT_IN_REQUIRED_GROUP',
        `IAM user ${iamUserName} is not a member of the required group ${required}`,
        {
          details: { iamUserName, group: required },
        },
      );
    }
    const active = summaries.filter((key) => key.status === 'Active');
    let knownBodies = 0;
    const results = await Promise.all(
      active.map(async (key): Promise<{ keyId: string; key?: SshPublicKey; reason?: string; known?: true }> => {
        const known = await options.knownBody?.(iamUserName, key.keyId);
        if (known) {
          knownBodies++;
          return { keyId: key.keyId, key: known, known: true };
        }
        return { keyId: key.keyId, ...(await this.getActiveKey(iamUserName, key.keyId)) };
      }),
    );
    const keys: SshPublicKey[] = [];
    const rejected: RejectedKey[] = [];
    const fetched: FetchedKey[] = [];
    const seen = new Set<string>();
    for (const result of results) {
      if (result.key && !result.known) fetched.push({ keyId: result.keyId, key: result.key });
      if (result.key) {
        if (!seen.has(result.key.line)) keys.push(result.key);
        seen.add(result.key.line);
      } else {
        rejected.push({ keyId: result.keyId, reason: result.reason ?? 'unknown' });
      }
    }
    return { linuxName, iamUserName, keys, rejected, user, fetched, knownBodies };
  }

  private toLinuxGroups(groups: IamGroup[]): LinuxGroup[] {
    const result: LinuxGroup[] = [];
    for (const group of groups) {
      const linuxName = linuxNameOfIamGroup(group.groupName, this.config);
      if (linuxName) result.push({ ...group, linuxName, gid: unixIdFor(group.groupId, this.config.uidScheme) });
    }
    return result;
  }

  /** A per-user call: NoSuchEntity names the user (or the key) rather than a bare entity. */
  private call<T>(operation: string, iamUserName: string, run: () => Promise<T>): Promise<T> {
    // The key list just named this key, so here the missing entity is the key.
    const missing: MissingEntity =
      operation === 'GetSSHPublicKey'
        ? { code: 'NO_SUCH_KEY', message: `no such SSH key for IAM user ${iamUserName}` }
        : { code: 'NO_SUCH_USER', message: `no such IAM user: ${iamUserName}` };
    return awsCall(operation, run, { missing });
  }
}

function toIamGroup(group: { GroupName?: unknown; GroupId?: unknown }, operation: string): IamGroup {
  return {
    groupName: requireString(group.GroupName, operation, 'GroupName'),
    groupId: requireString(group.GroupId, operation, 'GroupId'),
  };
}

function toIamUser(operation: string) {
  return (user: { UserName?: unknown; UserId?: unknown; Arn?: unknown }): IamUser => ({
    userName: requireString(user.UserName, operation, 'UserName'),
    userId: requireString(user.UserId, operation, 'UserId'),
    arn: typeof user.Arn === 'string' ? user.Arn : undefined,
  });
}
