// Issue 12, compat mode: the sync locks the account of an IAM user who is gone, unlocks it when the
// same unique ID is back, empties a group whose IAM group is gone, keeps every keymaker account in
// keymaker-users, and applies each member change on its own.
import { expect } from '@jest/globals';
import { GetGroupCommand, ListGroupsCommand, ListUsersCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { applySyncPlan, planGroupSync, runGroupSync, type IamSyncState } from '../src/accounts/group-sync';
import { parseManagedAccounts, parseManagedGroups, serializeManagedAccounts } from '../src/accounts/managed-accounts';
import { ShadowUtilsAdmin } from '../src/accounts/local-accounts';
import { bareChange, DEVS_GROUP, FakeHost, newIam, resolutionFor, SYNC_OPTIONS, wideUid } from './fakes';

const uid = wideUid;
const user = (name: string) => ({ userName: name, userId: `AIDA${name.toUpperCase().padEnd(16, '0')}` });
const ALICE = user('alice');
const BOB = user('bob');
const DEVS = DEVS_GROUP;
const options = { ...SYNC_OPTIONS, managedUsersGroup: 'keymaker-users' };

/** alice and bob with keymaker accounts, both in devs and keymaker-users, plus an admin in devs. */
function host() {
  return new FakeHost({
    users: [
      ['alice', uid(ALICE.userId)],
      ['bob', uid(BOB.userId)],
      ['admin', 1000],
    ],
    groups: [
      ['devs', DEVS.gid, ['admin', 'alice', 'bob']],
      ['keymaker-users', 990, ['alice', 'bob']],
    ],
  })
    .manage('alice', ALICE.userId)
    .manage('bob', BOB.userId);
}
const local = (h: FakeHost) => ({
  users: h.users_,
  groups: h.groups_,
  managed: h.managed_,
  managedGroups: h.managedGroups_,
});

describe('locking the account of an IAM user who is gone', () => {
  test('deleted: locked, out of every keymaker group but keymaker-users, sessions ended, marked locked', async () => {
    const h = host();
    const iam: IamSyncState = { groups: [{ ...DEVS, members: [BOB] }], allowedUsers: [BOB] };
    const plan = planGroupSync(iam, local(h), options);
    expect(plan.lock).toEqual([
      {
        user: 'alice',
        uid: uid(ALICE.userId),
        iamUser: '-',
        reason: `no IAM user has the unique ID ${ALICE.userId} any more (deleted or re-created)`,
      },
    ]);
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['admin', 'bob'], add: [], remove: ['alice'] },
    ]);
    const applied = await applySyncPlan(plan, h, h, h);
    expect(applied.failed).toEqual([]);
    expect(h.changes).toEqual([
      'usermod -L -e 1 alice',
      `end sessions alice ${uid(ALICE.userId)}`,
      'gpasswd -d alice devs',
    ]);
    expect(h.members('keymaker-users')).toEqual(['alice', 'bob']);
    expect(h.managed_.find((a) => a.name === 'alice')).toMatchObject({ locked: true });
    // Home and account stay.
    expect(h.users_.some((u) => u.name === 'alice')).toBe(true);
    expect(applied.audit).toEqual([
      expect.stringMatching(/^revoke lock user=alice uid=\d+ iam_user=- reason="no IAM user has the unique ID/),
      expect.stringMatching(/^revoke group=devs user=alice uid=\d+ iam_user=- reason="account locked: /),
    ]);

    // The next sync changes nothing more: the account stays locked and out of devs.
    const again = planGroupSync(iam, local(h), options);
    expect([again.lock, again.unlock, again.memberships]).toEqual([[], [], []]);
  });

  test('renamed: the same unique ID under another name locks the old account; no one inherits it', () => {
    const h = host();
    const renamed = { ...ALICE, userName: 'alice2' };
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [renamed, BOB] }], allowedUsers: [renamed, BOB] },
      local(h),
      options,
    );
    expect(plan.lock.map((l) => [l.user, l.iamUser, l.reason])).toEqual([
      ['alice', 'alice2', `IAM user ${ALICE.userId} is now alice2, which is not alice (renamed)`],
    ]);
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['admin', 'bob'], add: [], remove: ['alice'] },
    ]);
  });

  test('out of the required group: locked with that reason', () => {
    const plan = planGroupSync({ groups: [], allowedUsers: [BOB] }, local(host()), {
      ...options,
      requiredGroup: 'ssh-users',
    });
    expect(plan.lock.map((l) => l.reason)).toEqual([
      `IAM user ${ALICE.userId} is gone or no longer in the required group ssh-users`,
    ]);
  });

  test('the same unique ID back: unlocked and her groups restored; a different IAM user named alice is not', async () => {
    const h = host();
    await applySyncPlan(
      planGroupSync({ groups: [{ ...DEVS, members: [BOB] }], allowedUsers: [BOB] }, local(h), options),
      h,
      h,
      h,
    );
    h.changes = [];
    // A new IAM user called alice (new unique ID): still locked, not added.
    const impostor = { userName: 'alice', userId: 'AIDANEWALICE00000001' };
    const other = planGroupSync(
      { groups: [{ ...DEVS, members: [impostor, BOB] }], allowedUsers: [impostor, BOB] },
      local(h),
      options,
    );
    expect([other.lock, other.unlock, other.memberships]).toEqual([[], [], []]);

    const back = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE, BOB] }], allowedUsers: [ALICE, BOB] },
      local(h),
      options,
    );
    expect(back.unlock.map((u) => u.user)).toEqual(['alice']);
    const applied = await applySyncPlan(back, h, h, h);
    expect(applied.failed).toEqual([]);
    expect(h.changes).toEqual(["usermod -U -e '' alice", 'gpasswd -a alice devs']);
    expect(h.managed_.find((a) => a.name === 'alice')!.locked).toBeUndefined();
    expect(applied.audit).toEqual([
      expect.stringMatching(/^grant unlock user=alice .*iam_user=alice reason=/),
      expect.stringMatching(/^grant group=devs user=alice .*reason="member of IAM group keymaker_devs"/),
    ]);
  });

  test('without the list of allowed users nothing is locked or unlocked, and a locked account stays out', () => {
    const h = host();
    h.managed_ = h.managed_.map((a) => (a.name === 'alice' ? { ...a, locked: true } : a));
    h.groups_[0]!.members = ['admin', 'bob'];
    const plan = planGroupSync({ groups: [{ ...DEVS, members: [ALICE, BOB] }] }, local(h), options);
    expect([plan.lock, plan.unlock, plan.memberships]).toEqual([[], [], []]);
  });

  test('a failed lock still ends the sessions and removes the groups, and is reported', async () => {
    const h = host();
    h.failOn = /^usermod -L/;
    const applied = await applySyncPlan(
      planGroupSync({ groups: [{ ...DEVS, members: [BOB] }], allowedUsers: [BOB] }, local(h), options),
      h,
      h,
      h,
    );
    expect(applied.failed).toEqual([expect.stringMatching(/^locked account alice .*simulated failure/)]);
    expect(h.changes).toEqual([`end sessions alice ${uid(ALICE.userId)}`, 'gpasswd -d alice devs']);
    // Not marked locked: the next sync tries the lock again.
    expect(h.managed_.find((a) => a.name === 'alice')!.locked).toBeUndefined();
  });
});

describe('the record of managed accounts carries the lock', () => {
  test('round trip, and a fourth field other than locked is refused', () => {
    const text = serializeManagedAccounts([
      { name: 'alice', uid: 2000000001, iamUserId: ALICE.userId, locked: true },
      { name: 'bob', uid: 2000000002, iamUserId: BOB.userId },
    ]);
    expect(text).toContain(`alice:2000000001:${ALICE.userId}:locked\n`);
    expect(parseManagedAccounts(text, 'f')).toEqual([
      { name: 'alice', uid: 2000000001, iamUserId: ALICE.userId, locked: true },
      { name: 'bob', uid: 2000000002, iamUserId: BOB.userId },
    ]);
    expect(() => parseManagedAccounts(`alice:2000000001:${ALICE.userId}:unlocked\n`, 'f')).toThrow(
      /not NAME:UID:IAM_USER_ID\[:locked\]/,
    );
    expect(() => parseManagedGroups('devs:12:AGPA:x:y\n', 'g')).toThrow(/not NAME:GID/);
  });
});

describe('a group whose IAM group is gone', () => {
  const recorded = { name: 'devs', gid: DEVS.gid, iamGroupId: DEVS.groupId, iamGroupName: DEVS.groupName };

  test('a group keymaker mirrored is recorded, then emptied of its managed members when the IAM group is deleted', () => {
    const h = host();
    const first = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE, BOB] }], allowedUsers: [ALICE, BOB] },
      local(h),
      options,
    );
    expect(first.managedGroups).toEqual([recorded]);
    h.managedGroups_ = first.managedGroups!;
    const gone = planGroupSync({ groups: [], allowedUsers: [ALICE, BOB] }, local(h), options);
    expect(gone.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['admin'], add: [], remove: ['alice', 'bob'] },
    ]);
    expect(gone.memberships[0]!.subjects!.alice!.reason).toBe('IAM group keymaker_devs is gone (deleted or renamed)');
    // The record keeps it: the group stays keymaker's.
    expect(gone.managedGroups).toBeUndefined();
    expect(gone.lock).toEqual([]);
  });

  test('an IAM group re-created under the same name (new ID, so another GID) fills the old group again', () => {
    const h = host();
    h.groups_[0]!.members = ['admin'];
    h.managedGroups_ = [recorded];
    const recreated = { ...DEVS, groupId: 'AGPADEVS000000000002', gid: uid('AGPADEVS000000000002') };
    const plan = planGroupSync(
      { groups: [{ ...recreated, members: [ALICE] }], allowedUsers: [ALICE, BOB] },
      local(h),
      options,
    );
    expect(plan.refused).toEqual([]);
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['admin', 'alice'], add: ['alice'], remove: [] },
    ]);
    expect(plan.managedGroups).toEqual([{ ...recorded, iamGroupId: 'AGPADEVS000000000002' }]);
  });

  test('without a record, an existing group of that name with another GID is still refused', () => {
    const h = host();
    const recreated = { ...DEVS, groupId: 'AGPADEVS000000000002', gid: uid('AGPADEVS000000000002') };
    const plan = planGroupSync({ groups: [{ ...recreated, members: [ALICE] }] }, local(h), options);
    expect(plan.refused.map((r) => r.group)).toEqual(['devs']);
  });
});

describe('keymaker-users and one member at a time', () => {
  test('a missing keymaker-users is created with every recorded account in one step', async () => {
    const h = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
      ],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId);
    const plan = planGroupSync({ groups: [], allowedUsers: [ALICE, BOB] }, local(h), options);
    expect(plan.createUsersGroup).toBe('keymaker-users');
    const result = await applySyncPlan(plan, h, h, h);
    // One groupadd, not one gpasswd per account: a first sync of 1,000 accounts is 1 process, not 1,001.
    expect(h.changes).toEqual(['groupadd --system keymaker-users alice,bob']);
    expect(h.members('keymaker-users')).toEqual(['alice', 'bob']);
    expect(result.done).toEqual(['created group keymaker-users; group keymaker-users: +alice +bob']);
    expect(result.audit).toHaveLength(2);
  });

  test('a recorded account missing from an existing keymaker-users is added on its own', async () => {
    const h = new FakeHost({
      users: [
        ['alice', uid(ALICE.userId)],
        ['bob', uid(BOB.userId)],
      ],
      groups: [['keymaker-users', 990, ['bob']]],
    })
      .manage('alice', ALICE.userId)
      .manage('bob', BOB.userId);
    const plan = planGroupSync({ groups: [], allowedUsers: [ALICE, BOB] }, local(h), options);
    expect(plan.createUsersGroup).toBeUndefined();
    await applySyncPlan(plan, h, h, h);
    expect(h.changes).toEqual(['gpasswd -a alice keymaker-users']);
  });

  test('stale and odd members are reported and left alone; every other change in that group and others applies', async () => {
    const ops = { groupName: 'keymaker_ops', groupId: 'AGPAOPS0000000000001', linuxName: 'ops' };
    const opsGroup = { ...ops, gid: uid(ops.groupId) };
    const h = host();
    h.groups_[0]!.members = ['ghost', 'Odd.Name', 'alice', 'bob'];
    h.groups_.push({ name: 'ops', gid: opsGroup.gid, members: ['alice'] });
    // gpasswd fails on bob's removal here (as it would on a broken group file): the rest still applies.
    h.failOn = /^gpasswd -d bob devs/;
    const plan = planGroupSync(
      {
        groups: [
          { ...DEVS, members: [ALICE] },
          { ...opsGroup, members: [BOB] },
        ],
        allowedUsers: [ALICE, BOB],
      },
      local(h),
      options,
    );
    expect(plan.skipped).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ user: 'ghost', group: 'devs' }),
        expect.objectContaining({ user: 'Odd.Name', group: 'devs' }),
      ]),
    );
    const applied = await applySyncPlan(plan, h, h, h);
    expect(applied.failed).toEqual([expect.stringMatching(/^group devs: -bob: simulated failure/)]);
    expect(applied.done).toEqual(['group ops: +bob -alice']);
    expect(h.members('devs')).toEqual(['ghost', 'Odd.Name', 'alice', 'bob']);
    expect(h.members('ops')).toEqual(['bob']);
    expect(h.changes).not.toContain(expect.stringContaining('ghost'));
  });
});

describe('runGroupSync reads the allowed users in full before changing anything', () => {
  const iam = newIam();
  const iamMock = mockClient(iam);
  beforeEach(() => iamMock.reset());

  test('a required group that no longer exists allows nobody: every account is locked (NoSuchEntity is an answer)', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'ssh-users' })
      .rejects(Object.assign(new Error('The group with name ssh-users cannot be found.'), { name: 'NoSuchEntity' }));
    const h = host();
    const report = await runGroupSync(
      {
        accounts: h,
        admin: h,
        resolve: async () => resolutionFor(iam, { requireIamGroup: 'ssh-users' }),
        lock: (b) => b(),
        managed: h,
        managedGroups: h,
      },
      { preProvisionAccounts: false, allowedExistingGroups: [] },
    );
    expect(report.failed).toEqual([]);
    expect(h.locked).toEqual(new Set(['alice', 'bob']));
    expect(report.audit.filter((l) => l.startsWith('revoke lock'))).toHaveLength(2);
  });

  test('a throttled ListUsers page locks nobody; with the group list failing too, the sync fails and changes nothing', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [] });
    iamMock
      .on(ListUsersCommand)
      .resolvesOnce({
        Users: [{ UserName: 'bob', UserId: BOB.userId, Arn: 'a', Path: '/', CreateDate: new Date() }],
        IsTruncated: true,
        Marker: 'p2',
      })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    iamMock.on(GetGroupCommand).rejects(new Error('no group is read'));
    const h = host();
    const sync = () =>
      runGroupSync(
        {
          accounts: h,
          admin: h,
          resolve: async () => resolutionFor(iam),
          lock: (b) => b(),
          managed: h,
          managedGroups: h,
        },
        { preProvisionAccounts: false, allowedExistingGroups: [] },
      );
    const report = await sync();
    // alice is not on the first page: a partial list must not lock her.
    expect(report.failed).toEqual([
      expect.stringMatching(/^reading the IAM users .*no account was locked or unlocked/),
    ]);
    expect(h.changes).toEqual([]);
    expect(h.managed_.some((a) => a.locked)).toBe(false);

    // Nothing readable at all: the error itself, nothing changed.
    iamMock.on(ListGroupsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    await expect(sync()).rejects.toMatchObject({ code: 'THROTTLED' });
    expect(h.changes).toEqual([]);
  });
});

describe('ShadowUtilsAdmin: the commands a revocation runs, as argument arrays', () => {
  function fakeSys(pkillCodes: number[], logind = false) {
    const argvs: string[][] = [];
    return {
      argvs,
      sys: {
        run: async (argv: string[]) => {
          argvs.push(argv);
          const code = argv[0] === 'pkill' ? (pkillCodes.shift() ?? 1) : 0;
          return { code, stdout: '', stderr: code > 1 ? 'pkill: boom' : '' };
        },
        readFile: async (p: string) => (logind && p === '/run/systemd/users/2000000001' ? 'STATE=active\n' : undefined),
      },
    };
  }

  test('lock, unlock, one member in and out, keymaker-users', async () => {
    const { sys, argvs } = fakeSys([]);
    const admin = new ShadowUtilsAdmin(sys);
    await admin.lockUser('alice');
    await admin.unlockUser('alice');
    await admin.addGroupMember('devs', 'alice');
    await admin.removeGroupMember('devs', 'alice');
    await admin.addSystemGroup('keymaker-users');
    expect(argvs).toEqual([
      ['usermod', '--lock', '--expiredate', '1', '--', 'alice'],
      ['usermod', '--unlock', '--expiredate', '', '--', 'alice'],
      ['gpasswd', '--add', 'alice', '--', 'devs'],
      ['gpasswd', '--delete', 'alice', '--', 'devs'],
      ['groupadd', '--system', '--', 'keymaker-users'],
    ]);
    expect(() => admin.lockUser('-rf')).toThrow(/invalid Linux user name/);
  });

  test('sessions: loginctl only when logind tracks her, then pkill by real UID until none is left', async () => {
    const quiet = fakeSys([0, 0, 1]);
    await new ShadowUtilsAdmin(quiet.sys).endSessions('alice', 2000000001);
    expect(quiet.argvs).toEqual([
      ['pkill', '-KILL', '-U', '2000000001'],
      ['pkill', '-KILL', '-U', '2000000001'],
      ['pkill', '-KILL', '-U', '2000000001'],
    ]);
    const logind = fakeSys([1], true);
    await new ShadowUtilsAdmin(logind.sys).endSessions('alice', 2000000001);
    expect(logind.argvs).toEqual([
      ['loginctl', 'terminate-user', '--', 'alice'],
      ['pkill', '-KILL', '-U', '2000000001'],
    ]);
    // pkill itself failing (exit 2/3) is an error, not "nothing left".
    await expect(new ShadowUtilsAdmin(fakeSys([3]).sys).endSessions('alice', 2000000001)).rejects.toThrow(
      /pkill failed/,
    );
  });
});
