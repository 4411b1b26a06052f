import { expect } from '@jest/globals';
import { planGroupSync } from '../src/accounts/group-sync';
import { bareChange, DEVS_GROUP, FakeHost, SYNC_OPTIONS, wideUid } from './fakes';

const uid = wideUid;
const DEVS = DEVS_GROUP;
const options = SYNC_OPTIONS;

describe('sync and IAM name case (issue 13 point 10)', () => {
  const ALICE = { userName: 'Alice.Smith', userId: 'AIDAALICESMITH000001' };

  test('a user JIT-created as alice.smith from IAM Alice.Smith stays in her groups', () => {
    // The PAM hook created alice.smith (login name) for IAM user Alice.Smith and put her in devs.
    const local = new FakeHost({
      users: [['alice.smith', uid(ALICE.userId)]],
      groups: [['devs', DEVS.gid, ['alice.smith']]],
    }).manage('alice.smith', ALICE.userId);
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([]);
  });

  test('and is added to a group she joins later', () => {
    const local = new FakeHost({
      users: [['alice.smith', uid(ALICE.userId)]],
      groups: [['devs', DEVS.gid, []]],
    }).manage('alice.smith', ALICE.userId);
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [ALICE] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([
      { group: 'devs', members: ['alice.smith'], add: ['alice.smith'], remove: [] },
    ]);
  });

  test('an IAM member no Linux name can represent is skipped with a reason, never mapped', () => {
    const local = new FakeHost({ groups: [['devs', DEVS.gid, []]] });
    const odd = { userName: 'bob+ops', userId: 'AIDABOBOPS0000000001' };
    const plan = planGroupSync(
      { groups: [{ ...DEVS, members: [odd] }] },
      { users: local.users_, groups: local.groups_, managed: local.managed_ },
      options,
    );
    expect(plan.memberships.map(bareChange)).toEqual([]);
    expect(plan.skipped).toEqual([
      { user: 'bob+ops', group: 'devs', reason: expect.stringMatching(/no Linux user name/) },
    ]);
  });
});
