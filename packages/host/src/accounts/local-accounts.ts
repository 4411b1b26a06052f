/*
 * Local users and groups as NSS sees them (getent), and the shadow-utils
 * commands that change them. Reads and writes are separate interfaces so a
 * planner can be handed only what it may use.
 */
import { assertLinuxUserName, HostError, isValidLinuxName } from '@keymaker/core';
import { parseGroupLine, parsePasswdLine, type GroupEntry, type PasswdEntry } from '../system/nss-entries';
import { realRuntimeSystem, type RuntimeSystem } from '../system/runtime-system';

export type { GroupEntry, PasswdEntry };

export interface LocalAccounts {
  user(name: string): Promise<PasswdEntry | undefined>;
  userByUid(uid: number): Promise<PasswdEntry | undefined>;
  group(name: string): Promise<GroupEntry | undefined>;
  groupByGid(gid: number): Promise<GroupEntry | undefined>;
  /** Every user / group NSS enumerates. */
  users(): Promise<PasswdEntry[]>;
  groups(): Promise<GroupEntry[]>;
}

export interface NewAccount {
  name: string;
  uid: number;
  /** Primary group: the user's private group, with this GID and the user's name. */
  gid: number;
  /**
   * 'create': useradd makes the private group in the same step as the user (no window in which a
   * kill leaves a group without its user). 'existing': a private group a killed run left behind
   * (see privateGroupFor) is reused.
   */
  privateGroup: 'create' | 'existing';
  comment: string;
  /** Supplementary groups (must exist). */
  groups: string[];
}

export interface LocalAdmin {
  /** Creates a group, with its members in the same step when given. */
  addGroup(name: string, gid: number, members?: string[]): Promise<void>;
  deleteGroup(name: string): Promise<void>;
  addUser(account: NewAccount): Promise<void>;
  /** Replaces the group's whole member list in one step (gpasswd -M). */
  setGroupMembers(group: string, members: string[]): Promise<void>;
  /**
   * One member in or out (gpasswd -a / -d): the sync changes members one by one, so a member
   * gpasswd cannot handle (a stale name, a name outside its pattern) fails only its own change.
   */
  addGroupMember(group: string, member: string): Promise<void>;
  removeGroupMember(group: string, member: string): Promise<void>;
  /** A system group with a GID of groupadd's choosing (keymaker-users), with its first members. */
  addSystemGroup(name: string, members?: string[]): Promise<void>;
  /** Password locked and account expired (usermod -L -e 1): sshd, su and cron refuse it in PAM's account stage. */
  lockUser(name: string): Promise<void>;
  /** Undoes lockUser (usermod -U -e ''); idempotent, like the lock. */
  unlockUser(name: string): Promise<void>;
  /** Ends every session and process of the account (loginctl terminate-user when logind runs, then SIGKILL to the rest). */
  endSessions(name: string, uid: number): Promise<void>;
}

function parseLines<T>(text: string, parse: (line: string) => T | undefined, what: string): T[] {
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = parse(line);
    // An entry we cannot read must not pass for "no such entry".
    if (!entry)
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `getent ${what} printed a line keymaker cannot parse: ${JSON.stringify(line.slice(0, 80))}`,
      );
    out.push(entry);
  }
  return out;
}

/** NSS lookups through getent(1): exit 2 means "no such entry", anything else non-zero is a failure. */
export class GetentAccounts implements LocalAccounts {
  constructor(private readonly sys: RuntimeSystem = realRuntimeSystem) {}

  private async getent(database: 'passwd' | 'group', key?: string): Promise<string | undefined> {
    const argv = key === undefined ? ['getent', database] : ['getent', database, key];
    const result = await this.sys.run(argv, { timeoutMs: 10_000 });
    if (result.code === 2) return undefined;
    if (result.code !== 0) {
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `getent ${database}${key === undefined ? '' : ` ${key}`} failed (exit ${result.code}): ${result.stderr.trim()}`,
      );
    }
    return result.stdout;
  }

  private async one<T>(
    database: 'passwd' | 'group',
    key: string,
    parse: (line: string) => T | undefined,
  ): Promise<T | undefined> {
    const text = await this.getent(database, key);
    if (text === undefined) return undefined;
    return parseLines(text, parse, database)[0];
  }

  user(name: string) {
    return this.one('passwd', assertLinuxUserName(name), parsePasswdLine);
  }
  userByUid(uid: number) {
    return this.one('passwd', String(uid), parsePasswdLine);
  }
  group(name: string) {
    if (!isValidLinuxName(name))
      return Promise.reject(new HostError('SYSTEM_COMMAND_FAILED', `invalid group name ${JSON.stringify(name)}`));
    return this.one('group', name, parseGroupLine);
  }
  groupByGid(gid: number) {
    return this.one('group', String(gid), parseGroupLine);
  }
  async users() {
    return parseLines((await this.getent('passwd')) ?? '', parsePasswdLine, 'passwd');
  }
  async groups() {
    return parseLines((await this.getent('group')) ?? '', parseGroupLine, 'group');
  }
}

function assertId(id: number): number {
  if (!Number.isInteger(id) || id < 1 || id > 0xfffffffe)
    throw new HostError('SYSTEM_COMMAND_FAILED', `refusing ID ${id}`);
  return id;
}

export const DEFAULT_LOGIN_SHELL = '/bin/bash';

/** shadow-utils, spawned with argument arrays; every name is validated again right here. */
export interface ShadowUtilsOptions {
  /**
   * Homes on EFS (issue 15): new accounts get BASE/NAME, and useradd makes no home; the home is made by
   * accounts/efs-home.ts (as the user, one mkdir, skeleton only into it), never by useradd as root.
   */
  efsHomeBase?: string;
  /** New accounts' login shell (the host config's loginShell). Default /bin/bash. */
  loginShell?: string;
}

export class ShadowUtilsAdmin implements LocalAdmin {
  constructor(
    private readonly sys: RuntimeSystem = realRuntimeSystem,
    private readonly options: ShadowUtilsOptions = {},
  ) {}

  /** Whether groupadd knows --users (shadow-utils 4.9+); learnt on first use. */
  private groupaddUsers: boolean | undefined;

  private async run(argv: string[]): Promise<void> {
    const result = await this.sys.run(argv, { timeoutMs: 30_000 });
    if (result.code !== 0) {
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `${argv[0]} failed (exit ${result.code}): ${result.stderr.trim().split('\n')[0] ?? ''}`,
        {
          details: { argv },
        },
      );
    }
  }

  addGroup(name: string, gid: number, members: string[] = []) {
    return this.groupadd(['--gid', String(assertId(gid))], name, members);
  }
  /** groupadd with its first members: one process instead of one per member. */
  private async groupadd(options: string[], name: string, members: string[]) {
    const base = ['groupadd', ...options];
    const group = assertLinuxUserName(name);
    if (members.length > 0 && this.groupaddUsers !== false) {
      const users = members.map((member) => assertLinuxUserName(member)).join(',');
      const result = await this.sys.run([...base, '--users', users, '--', group], { timeoutMs: 30_000 });
      // Older groupadd lacks --users (usage error, exit 2): then the group, then its member list.
      if (result.code === 0) {
        this.groupaddUsers = true;
        return;
      }
      if (result.code !== 2 || this.groupaddUsers === true) {
        throw new HostError(
          'SYSTEM_COMMAND_FAILED',
          `groupadd failed (exit ${result.code}): ${result.stderr.trim().split('\n')[0] ?? ''}`,
        );
      }
      this.groupaddUsers = false;
    }
    await this.run([...base, '--', group]);
    if (members.length > 0) await this.setGroupMembers(group, members);
  }
  deleteGroup(name: string) {
    return this.run(['groupdel', '--', assertLinuxUserName(name)]);
  }
  addUser(account: NewAccount) {
    const groups = account.groups.map((group) => assertLinuxUserName(group));
    const gid = String(assertId(account.gid));
    // --user-group picks its own GID unless the allowed range is exactly ours: then it is that GID
    // or useradd fails (exit 4) having created nothing.
    const primary =
      account.privateGroup === 'create'
        ? ['--user-group', '-K', `GID_MIN=${gid}`, '-K', `GID_MAX=${gid}`]
        : ['--gid', gid];
    return this.run([
      'useradd',
      '--uid',
      String(assertId(account.uid)),
      ...primary,
      ...(this.options.efsHomeBase
        ? ['--home-dir', `${this.options.efsHomeBase}/${assertLinuxUserName(account.name)}`, '--no-create-home']
        : ['--create-home']),
      '--shell',
      this.options.loginShell ?? DEFAULT_LOGIN_SHELL,
      '--comment',
      account.comment.replace(/[:\n]/g, ' '),
      // Derived UIDs are huge: lastlog/faillog entries at that offset would make huge sparse files.
      '--no-log-init',
      ...(groups.length > 0 ? ['--groups', groups.join(',')] : []),
      '--',
      assertLinuxUserName(account.name),
    ]);
  }
  addGroupMember(group: string, member: string) {
    return this.run(['gpasswd', '--add', assertLinuxUserName(member), '--', assertLinuxUserName(group)]);
  }
  removeGroupMember(group: string, member: string) {
    return this.run(['gpasswd', '--delete', assertLinuxUserName(member), '--', assertLinuxUserName(group)]);
  }
  addSystemGroup(name: string, members: string[] = []) {
    return this.groupadd(['--system'], name, members);
  }
  lockUser(name: string) {
    // -L alone leaves a key login working; the expiry (day 1 of 1970) is what PAM's account stage refuses.
    return this.run(['usermod', '--lock', '--expiredate', '1', '--', assertLinuxUserName(name)]);
  }
  unlockUser(name: string) {
    // usermod -U on a password that is only "!" refuses that part (it would be empty) but exits 0 and clears the expiry.
    return this.run(['usermod', '--unlock', '--expiredate', '', '--', assertLinuxUserName(name)]);
  }
  async endSessions(name: string, uid: number) {
    const user = assertLinuxUserName(name);
    const id = String(assertId(uid));
    // logind keeps /run/systemd/users/UID while it tracks the user: end her sessions (and their scopes) through it.
    if ((await this.sys.readFile(`/run/systemd/users/${id}`)) !== undefined)
      await this.run(['loginctl', 'terminate-user', '--', user]);
    // Then whatever runs outside a session (nohup, screen, a cron job started before the lock), by real UID,
    // again until none is left (a process forking between the scan and the kill); pkill exits 1 when none matched.
    for (let round = 0; round < 5; round++) {
      const killed = await this.sys.run(['pkill', '-KILL', '-U', id], { timeoutMs: 10_000 });
      if (killed.code === 1) return;
      if (killed.code !== 0)
        throw new HostError('SYSTEM_COMMAND_FAILED', `pkill failed (exit ${killed.code}): ${killed.stderr.trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new HostError('SYSTEM_COMMAND_FAILED', `processes of ${user} (uid ${id}) were still starting after 5 kills`);
  }
  setGroupMembers(group: string, members: string[]) {
    return this.run([
      'gpasswd',
      '--members',
      members.map((member) => assertLinuxUserName(member)).join(','),
      '--',
      assertLinuxUserName(group),
    ]);
  }
}
