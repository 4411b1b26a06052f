import { expect } from '@jest/globals';
import { GetGroupCommand, ListGroupsCommand, ListSSHPublicKeysCommand, ListUsersCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { type RoleConfig } from '@keymaker/core';
import { planGroupSync, runGroupSync, type IamSyncState } from '../src/accounts/group-sync';
import { bareChange, DEVS_GROUP, FakeHost, newIam, resolutionFor, SYNC_OPTIONS, wideUid } from './fakes';

const uid = wideUid;
const user = (name: string) => ({ userName: name, userId: `AIDA${name.toUpperCase().padEnd(16, '0')}` });
const ALICE = user('alice');
const BOB = user('bob');
const CAROL = user('carol');
const DEVS = DEVS_GROUP;
const options = SYNC_OPTIONS;

describe('planGroupSync', () => {
  test('creates a missing group and adds members that have keymaker accounts', () => {
    const local = new FakeHost({ users: [['alice', uid(ALICE.userId)]] }).manage('alice', ALICE.userId);
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE, BOB] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createGroups).toEqual([{ name: 'devs', gid: DEVS.gid, iamGroupName: 'keymaker_devs' }]);
    // bob has no account yet: he joins when it is created.
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['alice'], add: ['alice'], remove: [] },
    ]);
  });

  test('removes managed members IAM no longer lists and keeps members keymaker does not manage', () => {
    const local = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
        ['admin', 1000],
      ],
      groups: [['devs', DEVS.gid, ['admin', 'alice', 'bob', 'ghost']]],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId);
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createGroups).toEqual([]);
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['admin', 'ghost', 'alice'], add: [], remove: ['bob'] },
    ]);
  });

  test('never creates a group named after a local user or an IAM user it sees (it would block her private group)', () => {
    const local = new FakeHost({ users: [['dana', 1000]] });
    const named = (name: string, id: string) => ({
      groupName: `keymaker_${name}`,
      groupId: id,
      linuxName: name,
      gid: uid(id),
      members: [ALICE],
    });
    const plan = planGroupSync(
      {
        groups: [
          named('bob', 'AGPABOBGROUP00000001'),
          named('dana', 'AGPADANAGROUP0000001'),
          { ...DEVS, members: [BOB] },
        ],
      },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createGroups.map((g) => g.name)).toEqual(['devs']);
    expect(plan.refused).toEqual([
      { group: 'bob', reason: expect.stringContaining("never takes a user's name") },
      { group: 'dana', reason: expect.stringContaining("never takes a user's name") },
    ]);
  });

  test('pre-provisioning makes user and private group in one step, reusing a leftover private group', () => {
    const local = new FakeHost({ groups: [['alice', uid(ALICE.userId)]] });
    const plan = planGroupSync(
      { groups: [], authorizedUsers: [ALICE, BOB] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createUsers).toEqual([
      expect.objectContaining({ name: 'alice', uid: uid(ALICE.userId), privateGroup: 'existing' }),
      expect.objectContaining({ name: 'bob', uid: uid(BOB.userId), privateGroup: 'create' }),
    ]);
  });

  test('no change when Linux already matches IAM', () => {
    const local = new FakeHost({ users: [['alice', uid(ALICE.userId)]], groups: [['devs', DEVS.gid, ['alice']]] });
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([]);
    expect(plan.createGroups).toEqual([]);
  });

  test.each(['sudo', 'wheel', 'root', 'adm', 'docker', 'shadow'])(
    'refuses the existing group %s keymaker did not create',
    (name) => {
      const local = new FakeHost({ users: [['alice', uid(ALICE.userId)]], groups: [[name, 27, ['ubuntu']]] });
      const group = {
        groupName: `keymaker_${name}`,
        groupId: 'AGPAX0000000000000001',
        linuxName: name,
        gid: uid('AGPAX0000000000000001'),
      };
      const plan = planGroupSync(
        { groups: [{ ...group, members: [ALICE] }] },
        { users: local.users_, groups: local.groups_, managed: local.managed_ },
        options,
      );
      expect(plan.memberships.map(bareChange)).toEqual([]);
      expect(plan.createGroups).toEqual([]);
      expect(plan.refused).toEqual([{ group: name, reason: expect.stringContaining('allowedExistingGroups') }]);
    },
  );

  test('manages an existing group the administrator allowed, keeping its other members', () => {
    const local = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['ubuntu', 1000],
      ],
      groups: [['docker', 999, ['ubuntu']]],
    }).manage('alice', ALICE.userId);
    const group = {
      groupName: 'keymaker_docker',
      groupId: 'AGPAX0000000000000001',
      linuxName: 'docker',
      gid: uid('AGPAX0000000000000001'),
    };
    const plan = planGroupSync(
      { groups: [{ ...group, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      { ...options, allowedExistingGroups: ['docker'] },
    );
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'docker', members: ['ubuntu', 'alice'], add: ['alice'], remove: [] },
    ]);
  });

  test('refuses a group whose derived GID belongs to another group', () => {
    const local = new FakeHost({ groups: [['other', DEVS.gid]] });
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createGroups).toEqual([]);
    expect(plan.refused[0]!.reason).toMatch(/already belongs to group other/);
  });

  test('does not add a pre-existing local user who only shares the IAM name', () => {
    const local = new FakeHost({ users: [['alice', 1000]], groups: [['devs', DEVS.gid, []]] });
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([]);
    expect(plan.skipped).toEqual([expect.objectContaining({ user: 'alice', group: 'devs' })]);
  });

  test('a local account with a matching UID that is not in the record is neither added to nor removed from groups (issue 13, point 4)', () => {
    // alice's UID equals the one derived from IAM alice (a ground UID, or an account made by hand), but keymaker never recorded it.
    const local = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
      ],
      groups: [
        ['devs', DEVS.gid, ['bob']],
        ['ops', uid('AGPAOPS0000000000001'), []],
      ],
    });
    const OPS = {
      groupName: 'keymaker_ops',
      groupId: 'AGPAOPS0000000000001',
      linuxName: 'ops',
      gid: uid('AGPAOPS0000000000001'),
    };
    const plan = planGroupSync(
      {
        groups: [
          { ...DEVS, members: [] },
          { ...OPS, members: [ALICE, BOB] },
        ],
      },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([]);
    expect(plan.skipped.map((n) => n.user).sort()).toEqual(['alice', 'bob']);
    // Recorded under another IAM user ID (a re-created IAM user): still not hers.
    local.manage('alice', 'AIDAALICEOLD00000001');
    const again = planGroupSync(
      { groups: [{ ...OPS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(again.memberships.map(bareChange)).toEqual([]);
    // Recorded for her: managed.
    local.manage('alice', ALICE.userId);
    const managed = planGroupSync(
      { groups: [{ ...OPS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(managed.memberships.map(bareChange)).toEqual([
      { group: 'ops', members: ['alice'], add: ['alice'], remove: [] },
    ]);
  });

  test('pre-provisioning creates accounts for authorized users and puts them in their groups', () => {
    const local = new FakeHost({ users: [['carol', uid(CAROL.userId)]] }).manage('carol', CAROL.userId);
    const state: IamSyncState = { groups: [{ ...DEVS, members: [ALICE, CAROL] }], authorizedUsers: [ALICE, CAROL] };
    const plan = planGroupSync(state, { users: local.users_, groups: local.groups_, managed: local.managed_ }, options);
    expect(plan.createUsers).toEqual([
      expect.objectContaining({ name: 'alice', uid: uid(ALICE.userId), gid: uid(ALICE.userId) }),
    ]);
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['alice', 'carol'], add: ['alice', 'carol'], remove: [] },
    ]);
  });

  test('pre-provisioning skips a user whose UID is taken', () => {
    const local = new FakeHost({ users: [['mallory', uid(ALICE.userId)]] });
    const plan = planGroupSync(
      { groups: [], authorizedUsers: [ALICE] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.createUsers).toEqual([]);
    expect(plan.skipped[0]!.reason).toMatch(/already belongs to mallory/);
  });
});

describe('runGroupSync against a mocked IAM', () => {
  const iam = newIam();
  const iamMock = mockClient(iam);
  beforeEach(() => {
    iamMock.reset();
    // Everyone is still an IAM user: no account is locked unless a test says otherwise.
    iamMock.on(ListUsersCommand).resolves({ Users: [ALICE, BOB, CAROL].map((u) => iamUser(u)) });
  });
  /** The changes apart from keymaker-users, which every sync keeps complete (tested on its own). */
  const own = (changes: string[]) => changes.filter((c) => !c.includes('keymaker-users'));

  const iamGroup = (name: string, id: string) => ({
    GroupName: name,
    GroupId: id,
    Arn: 'a',
    Path: '/',
    CreateDate: new Date(),
  });
  const iamUser = (u: { userName: string; userId: string }) => ({
    UserName: u.userName,
    UserId: u.userId,
    Arn: 'a',
    Path: '/',
    CreateDate: new Date(),
  });

  function run(host: FakeHost, config: RoleConfig = {}, preProvisionAccounts = false) {
    return runGroupSync(
      {
        accounts: host,
        admin: host,
        resolve: async () => resolutionFor(iam, config),
        lock: (body) => body(),
        managed: host,
      },
      { preProvisionAccounts, allowedExistingGroups: [] },
    );
  }

  test('adds and removes members across all pages', async () => {
    iamMock
      .on(ListGroupsCommand)
      .resolvesOnce({ Groups: [iamGroup('keymaker_devs', DEVS.groupId)], IsTruncated: true, Marker: 'm1' })
      .resolvesOnce({ Groups: [iamGroup('other', 'AGPAO')] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_devs' })
      .resolvesOnce({
        Group: iamGroup('keymaker_devs', DEVS.groupId),
        Users: [iamUser(ALICE)],
        IsTruncated: true,
        Marker: 'p2',
      })
      .resolvesOnce({ Group: iamGroup('keymaker_devs', DEVS.groupId), Users: [iamUser(CAROL)] });
    const host = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
        ['carol', uid(CAROL.userId)],
      ],
      groups: [['devs', DEVS.gid, ['bob']]],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId)
      .manage('carol', CAROL.userId);
    const report = await run(host);
    expect(host.members('devs')).toEqual(['alice', 'carol']);
    expect(own(report.changes)).toEqual(['group devs: +alice +carol -bob']);
  });

  test("a throttled read of one group's second page leaves that group as it is; the others are synced (issue 12)", async () => {
    iamMock
      .on(ListGroupsCommand)
      .resolves({ Groups: [iamGroup('keymaker_devs', DEVS.groupId), iamGroup('keymaker_ops', 'AGPAOPS')] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_devs' })
      .resolves({ Group: iamGroup('keymaker_devs', DEVS.groupId), Users: [] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_ops' })
      .resolvesOnce({
        Group: iamGroup('keymaker_ops', 'AGPAOPS'),
        Users: [iamUser(ALICE)],
        IsTruncated: true,
        Marker: 'p2',
      })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    const host = new FakeHost({ users: [['bob', uid(BOB.userId)]], groups: [['devs', DEVS.gid, ['bob']]] }).manage(
      'bob',
      BOB.userId,
    );
    const first = await run(host);
    expect(first.failed).toEqual([
      expect.stringMatching(/^reading IAM group keymaker_ops: .*throttled.*group ops left as it is/),
    ]);
    // ops: not half-read, so not created with only its first page; devs: synced.
    expect(host.members('ops')).toBeUndefined();
    expect(host.members('devs')).toEqual([]);

    // The next run, with IAM answering every page, converges.
    iamMock.reset();
    iamMock.on(ListUsersCommand).resolves({ Users: [ALICE, BOB, CAROL].map((u) => iamUser(u)) });
    iamMock
      .on(ListGroupsCommand)
      .resolves({ Groups: [iamGroup('keymaker_devs', DEVS.groupId), iamGroup('keymaker_ops', 'AGPAOPS')] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_devs' })
      .resolves({ Group: iamGroup('keymaker_devs', DEVS.groupId), Users: [] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_ops' })
      .resolvesOnce({
        Group: iamGroup('keymaker_ops', 'AGPAOPS'),
        Users: [iamUser(ALICE)],
        IsTruncated: true,
        Marker: 'p2',
      })
      .resolvesOnce({ Group: iamGroup('keymaker_ops', 'AGPAOPS'), Users: [iamUser(BOB)] });
    const report = await run(host);
    expect(report.failed).toEqual([]);
    expect(host.members('devs')).toEqual([]);
    expect(host.members('ops')).toEqual(['bob']);
  });

  test('pre-provisioning reads the required group and skips users without an active key', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'ssh-users' })
      .resolves({ Group: iamGroup('ssh-users', 'AGPAS'), Users: [iamUser(ALICE), iamUser(BOB)] });
    iamMock.on(ListSSHPublicKeysCommand, { UserName: 'alice' }).resolves({
      SSHPublicKeys: [{ UserName: 'alice', SSHPublicKeyId: 'K1', Status: 'Active', UploadDate: new Date() }],
    });
    iamMock.on(ListSSHPublicKeysCommand, { UserName: 'bob' }).resolves({
      SSHPublicKeys: [{ UserName: 'bob', SSHPublicKeyId: 'K2', Status: 'Inactive', UploadDate: new Date() }],
    });
    iamMock.on(ListUsersCommand).rejects(new Error('must not list all users when a group is required'));
    const host = new FakeHost();
    const report = await run(host, { requireIamGroup: 'ssh-users' }, true);
    expect(host.users_.map((u) => u.name)).toEqual(['alice']);
    expect(own(report.changes)).toEqual([`created account alice (uid ${uid(ALICE.userId)})`]);
    // Each pre-provisioned account is written to the record of managed accounts.
    expect(host.managed_).toEqual([{ name: 'alice', uid: uid(ALICE.userId), iamUserId: ALICE.userId }]);
  });

  test('a failed step is reported and every other change still applies (issue 12)', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [iamGroup('keymaker_devs', DEVS.groupId)] });
    iamMock.on(GetGroupCommand).resolves({
      Group: iamGroup('keymaker_devs', DEVS.groupId),
      Users: [iamUser(ALICE), iamUser(BOB)],
    });
    const host = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
      ],
      groups: [['devs', DEVS.gid, []]],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId);
    host.failOn = /^gpasswd -a alice devs/;
    const report = await run(host);
    expect(own(report.changes)).toEqual(['group devs: +bob']);
    expect(report.failed).toEqual([expect.stringMatching(/^group devs: \+alice: simulated failure/)]);
    expect(host.members('devs')).toEqual(['bob']);
  });

  test('a new group is created with its existing members in one step', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [iamGroup('keymaker_devs', DEVS.groupId)] });
    iamMock.on(GetGroupCommand).resolves({ Group: iamGroup('keymaker_devs', DEVS.groupId), Users: [iamUser(ALICE)] });
    const host = new FakeHost({ users: [['alice', uid(ALICE.userId)]] }).manage('alice', ALICE.userId);
    const report = await run(host);
    expect(own(report.changes)).toEqual([`created group devs (gid ${DEVS.gid}); group devs: +alice`]);
    expect(host.members('devs')).toEqual(['alice']);
  });
});

describe('the sudo group keymaker-sudo (issue 12)', () => {
  const ADMINS = {
    groupName: 'admins',
    groupId: 'AGPAADMINS0000000000',
    linuxName: 'keymaker-sudo',
    gid: uid('AGPAADMINS0000000000'),
  };

  test('is created by keymaker with the managed members of the sudo IAM group; a removed member leaves it', () => {
    const local = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
      ],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId);
    const state = (members: (typeof ALICE)[]) => ({ groups: [{ ...ADMINS, members }] });
    const first = planGroupSync(
      state([ALICE, BOB]),
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(first.createGroups).toEqual([{ name: 'keymaker-sudo', gid: ADMINS.gid, iamGroupName: 'admins' }]);
    const synced = [...local.groups_, { name: 'keymaker-sudo', gid: ADMINS.gid, members: ['alice', 'bob'] }];
    const later = planGroupSync(
      state([ALICE]),
      { users: local.users_, groups: synced, managed: local.managed_ },
      options,
    );
    expect(later.memberships.map(bareChange)).toEqual([
      { group: 'keymaker-sudo', members: ['alice'], add: [], remove: ['bob'] },
    ]);
  });

  test('once the role names no sudo IAM group, keymaker-sudo is emptied at the next sync (the drop-in still names it)', () => {
    const local = new FakeHost({
      users: [['alice', uid(ALICE.userId)]],
      groups: [['keymaker-sudo', ADMINS.gid, ['alice', 'root']]],
    }).manage('alice', ALICE.userId);
    const record = { name: 'keymaker-sudo', gid: ADMINS.gid, iamGroupId: ADMINS.groupId, iamGroupName: 'admins' };
    const plan = planGroupSync(
      { groups: [] },
      { users: local.users_, groups: local.groups_, managed: local.managed_, managedGroups: [record] },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'keymaker-sudo', members: ['root'], add: [], remove: ['alice'] },
    ]);
  });

  test('a keymaker-sudo keymaker did not create (another GID) is refused, never taken over', () => {
    const local = new FakeHost({
      users: [['alice', uid(ALICE.userId)]],
      groups: [['keymaker-sudo', 1001, ['root']]],
    }).manage('alice', ALICE.userId);
    const plan = planGroupSync(
      { groups: [{ ...ADMINS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships).toEqual([]);
    expect(plan.refused).toEqual([
      { group: 'keymaker-sudo', reason: expect.stringContaining('was not created by keymaker') },
    ]);
  });
});
