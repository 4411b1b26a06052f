import { expect } from '@jest/globals';
import {
  GetGroupCommand,
  GetSSHPublicKeyCommand,
  GetUserCommand,
  ListGroupsCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
  ListUsersCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { isReservedLinuxName, isValidLinuxName, RESERVED_LINUX_NAMES } from '@keymaker/core';
import { createAccountForLogin } from '../src/login/create-account';
import { parseHostConfig } from '../src/config/host-config';
import { lookupAuthorizedKeys, runLookup } from '../src/login/keys-lookup';
import { planGroupSync, runGroupSync } from '../src/accounts/group-sync';
import { createMemorySyslog } from '../src/system/syslog';
import { bareChange, DEVS_GROUP, ED25519, FakeHost, newIam, resolutionFor, SYNC_OPTIONS, wideUid } from './fakes';

// Issue 13, point 11: an IAM user named like a package's service account
// (postgres, redis, nginx...) must never get that Linux name: a package
// installed later would find "its" account owned by that IAM user.

const iam = newIam();
const iamMock = mockClient(iam);
const uid = wideUid;

function seedIamUser(
  name: string,
  userId = `AIDA${name
    .toUpperCase()
    .replace(/[^A-Z]/g, 'X')
    .padEnd(16, '0')}`,
) {
  iamMock.on(GetUserCommand, { UserName: name }).resolves({
    User: { UserName: name, UserId: userId, Arn: `arn:aws:iam::1:user/${name}`, Path: '/', CreateDate: new Date() },
  });
  iamMock.on(ListSSHPublicKeysCommand, { UserName: name }).resolves({
    SSHPublicKeys: [
      { UserName: name, SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAA1', Status: 'Active', UploadDate: new Date() },
    ],
  });
  iamMock.on(GetSSHPublicKeyCommand, { UserName: name }).resolves({
    SSHPublicKey: {
      UserName: name,
      SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAA1',
      Status: 'Active',
      SSHPublicKeyBody: ED25519,
      Fingerprint: 'x',
    },
  });
  iamMock.on(ListGroupsForUserCommand, { UserName: name }).resolves({ Groups: [] });
  return { userName: name, userId };
}

beforeEach(() => iamMock.reset());

describe('the default reserved-name list (core, pure data)', () => {
  test.each([
    'postgres',
    'redis',
    'nginx',
    'mysql',
    'www-data',
    'mongodb',
    'memcache',
    'rabbitmq',
    'apache',
    'chrony',
    'sshd',
    'nobody',
    'root',
    'keymaker',
    'ssm-user',
  ])('%s is reserved', (name) => expect(isReservedLinuxName(name)).toBe(true));
  test('every entry is a valid Linux name, and the systemd- and _ prefixes are reserved too', () => {
    expect(RESERVED_LINUX_NAMES.filter((name) => !isValidLinuxName(name))).toEqual([]);
    expect(isReservedLinuxName('systemd-oom')).toBe(true);
    expect(isReservedLinuxName('_laurel')).toBe(true);
    expect(isReservedLinuxName('alice')).toBe(false);
    expect(isReservedLinuxName('appsvc', ['appsvc'])).toBe(true);
  });
});

describe('host config reservedNames', () => {
  test('adds names to the list', () => {
    expect(parseHostConfig('{"version":1,"reservedNames":["appsvc","batch"]}').reservedNames).toEqual([
      'appsvc',
      'batch',
    ]);
    expect(parseHostConfig('{"version":1}').reservedNames).toEqual([]);
  });
  test('refuses an entry that is not a Linux name (a typo must not go unnoticed)', () => {
    expect(() => parseHostConfig('{"version":1,"reservedNames":["Postgres"]}')).toThrow(/reservedNames.*"Postgres"/);
  });
});

describe('lookup', () => {
  test('an IAM user postgres with a valid key gets no keys, without any AWS call, and the refusal says reserved', async () => {
    seedIamUser('postgres');
    const resolve = jest.fn(async () => resolutionFor(iam));
    await expect(
      lookupAuthorizedKeys({ user: 'postgres' }, { accounts: new FakeHost(), resolve }),
    ).rejects.toMatchObject({ code: 'NOT_MANAGED', message: expect.stringMatching(/reserved/) });
    expect(resolve).not.toHaveBeenCalled();
    expect(iamMock.calls()).toHaveLength(0);

    const syslog = createMemorySyslog();
    const out: string[] = [];
    const code = await runLookup(
      { user: 'postgres' },
      { write: (t) => out.push(t) },
      { deps: { accounts: new FakeHost(), resolve }, syslog },
    );
    expect(code).not.toBe(0);
    expect(out).toEqual([]);
    expect(syslog.lines.map((l) => l.message).join('\n')).toMatch(
      /user="postgres".*decision=refused reason=NOT_MANAGED: .*reserved/,
    );
  });

  test('a name the host config reserves is refused the same way', async () => {
    seedIamUser('appsvc');
    const resolve = jest.fn(async () => resolutionFor(iam));
    await expect(
      lookupAuthorizedKeys({ user: 'appsvc' }, { accounts: new FakeHost(), resolve, reservedNames: ['appsvc'] }),
    ).rejects.toMatchObject({ code: 'NOT_MANAGED' });
    expect(iamMock.calls()).toHaveLength(0);
  });
});

describe('PAM hook', () => {
  const run = (host: FakeHost, user: string, reservedNames?: string[]) =>
    createAccountForLogin(
      user,
      { accounts: host, admin: host, resolve: async () => resolutionFor(iam), lock: (body) => body(), managed: host },
      { allowedExistingGroups: [], reservedNames },
    );

  test('creates no account for IAM user redis, without any AWS call', async () => {
    seedIamUser('redis');
    const host = new FakeHost();
    await expect(run(host, 'redis')).rejects.toMatchObject({
      code: 'NOT_MANAGED',
      message: expect.stringMatching(/reserved/),
    });
    expect(host.changes).toEqual([]);
    expect(iamMock.calls()).toHaveLength(0);
  });

  test('nor for a name the host config reserves', async () => {
    seedIamUser('appsvc');
    const host = new FakeHost();
    await expect(run(host, 'appsvc', ['appsvc'])).rejects.toMatchObject({ code: 'NOT_MANAGED' });
    expect(host.changes).toEqual([]);
  });

  test('a package account that exists already is left alone as before (exists, no refusal)', async () => {
    const host = new FakeHost({ users: [['postgres', 114]] });
    expect(await run(host, 'postgres')).toEqual({ kind: 'exists', name: 'postgres' });
  });
});

describe('sync', () => {
  const DEVS = DEVS_GROUP;
  const options = SYNC_OPTIONS;
  const NGINX = { userName: 'nginx', userId: 'AIDANGINX00000000001' };
  const ALICE = { userName: 'alice', userId: 'AIDAALICE00000000001' };

  test('never adds a reserved name to a group, removes one made before the upgrade, and says why', () => {
    const local = new FakeHost({
      users: [
        ['nginx', uid(NGINX.userId)],
        ['alice', uid(ALICE.userId)],
      ],
      groups: [['devs', DEVS.gid, ['nginx']]],
    })
      .manage('nginx', NGINX.userId)
      .manage('alice', ALICE.userId);
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [NGINX, ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['alice'], add: ['alice'], remove: ['nginx'] },
    ]);
    expect(plan.skipped).toEqual([{ user: 'nginx', group: 'devs', reason: expect.stringMatching(/reserved/) }]);
  });

  test('does not pre-provision a reserved or host-reserved name', () => {
    const local = new FakeHost();
    const batch = { userName: 'batch', userId: 'AIDABATCH00000000001' };
    const plan = planGroupSync(
      { groups: [], authorizedUsers: [NGINX, batch, ALICE] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      { ...options, reservedNames: ['batch'] },
    );
    expect(plan.createUsers.map((u) => u.name)).toEqual(['alice']);
    expect(plan.skipped.map((s) => s.user)).toEqual(['nginx', 'batch']);
  });

  test('runGroupSync passes the host-config names through', async () => {
    const batch = seedIamUser('batch');
    iamMock.on(ListGroupsCommand).resolves({
      Groups: [{ GroupName: DEVS.groupName, GroupId: DEVS.groupId, Arn: 'a', Path: '/', CreateDate: new Date() }],
    });
    iamMock.on(GetGroupCommand).resolves({
      Group: { GroupName: DEVS.groupName, GroupId: DEVS.groupId, Arn: 'a', Path: '/', CreateDate: new Date() },
      Users: [{ UserName: batch.userName, UserId: batch.userId, Arn: 'a', Path: '/', CreateDate: new Date() }],
    });
    iamMock.on(ListUsersCommand).resolves({ Users: [] });
    const host = new FakeHost({
      users: [['batch', uid(batch.userId)]],
      groups: [['devs', DEVS.gid, ['batch']]],
    }).manage('batch', batch.userId);
    const report = await runGroupSync(
      { accounts: host, admin: host, resolve: async () => resolutionFor(iam), lock: (body) => body(), managed: host },
      { preProvisionAccounts: false, allowedExistingGroups: [], reservedNames: ['batch'] },
    );
    expect(host.members('devs')).toEqual([]);
    expect(report.skipped).toEqual([
      expect.objectContaining({ user: 'batch', reason: expect.stringMatching(/reserved/) }),
    ]);
  });
});

describe('groups named like system or package groups', () => {
  const options = SYNC_OPTIONS;
  const group = (name: string) => ({
    groupName: `keymaker_${name}`,
    groupId: `AGPA${name.toUpperCase().padEnd(16, '0')}`,
    linuxName: name,
    gid: uid(`AGPA${name.toUpperCase().padEnd(16, '0')}`),
  });

  test.each(['admin', 'docker', 'postgres', 'systemd-journal'])(
    'sync does not create group %s (a package or sudoers would give it meaning)',
    (name) => {
      const local = new FakeHost();
      const plan = planGroupSync(
        { groups: [{ ...group(name), members: [] }] },
        { users: local.users_, groups: local.groups_, managed: local.managed_ },
        options,
      );
      expect(plan.createGroups).toEqual([]);
      expect(plan.refused).toEqual([{ group: name, reason: expect.stringMatching(/reserved/) }]);
    },
  );

  test('unless the administrator lists it in allowedExistingGroups', () => {
    const local = new FakeHost();
    const plan = planGroupSync(
      { groups: [{ ...group('docker'), members: [] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      { ...options, allowedExistingGroups: ['docker'] },
    );
    expect(plan.createGroups.map((g) => g.name)).toEqual(['docker']);
  });

  test('the PAM hook does not create it either', async () => {
    seedIamUser('bob');
    const g = group('postgres');
    iamMock.on(ListGroupsForUserCommand, { UserName: 'bob' }).resolves({
      Groups: [{ GroupName: g.groupName, GroupId: g.groupId, Arn: 'a', Path: '/', CreateDate: new Date() }],
    });
    const host = new FakeHost();
    const outcome = await createAccountForLogin(
      'bob',
      { accounts: host, admin: host, resolve: async () => resolutionFor(iam), lock: (body) => body(), managed: host },
      { allowedExistingGroups: [] },
    );
    expect(outcome).toMatchObject({
      kind: 'created',
      groups: [],
      skippedGroups: [expect.stringMatching(/^postgres: .*reserved/)],
    });
    expect(host.changes.some((c) => c.startsWith('groupadd postgres'))).toBe(false);
  });
});
