import { unixIdFor } from '@keymaker/core';
import { planAdoption } from '../src/accounts/adopt';
import { mergeManagedAccounts, parseManagedAccounts, serializeManagedAccounts } from '../src/accounts/managed-accounts';
import type { PasswdEntry } from '../src/accounts/local-accounts';

const legacy = (id: string) => unixIdFor(id, 'legacy');
const iamUser = (name: string) => ({
  userName: name,
  userId: `AIDA${name
    .toUpperCase()
    .replace(/[^A-Z]/g, '')
    .padEnd(16, '0')}`,
});
const passwd = (name: string, uid: number): PasswdEntry => ({
  name,
  uid,
  gid: uid,
  gecos: '',
  home: `/home/${name}`,
  shell: '/bin/bash',
});
const options = {
  uidScheme: 'legacy' as const,
  linuxUserSuffix: '',
  uidFor: (u: { userId: string }) => legacy(u.userId),
};

describe('planAdoption (install --adopt-legacy-accounts)', () => {
  const ALICE = iamUser('alice');
  const BOB = iamUser('bob');
  const CAROL = iamUser('carol');
  const DAVE = iamUser('dave');
  const NGINX = iamUser('nginx');

  test('picks exactly the existing accounts whose UID equals the one derived from their IAM user now', () => {
    const local = [
      passwd('root', 0),
      passwd('ubuntu', 1000), // no IAM user
      passwd('alice', legacy(ALICE.userId)), // 1.x-made: adopted
      passwd('bob', legacy(BOB.userId) === 2500 ? 2501 : 2500), // in range, another UID (IAM bob re-created since): not adopted
      passwd('carol', legacy(CAROL.userId)), // already recorded for carol: nothing to do
      passwd('dave', 1001), // outside the range
      passwd('nginx', legacy(NGINX.userId)), // reserved name
      passwd('erin', legacy('AIDAERIN000000000001')), // no IAM user of that name
    ];
    const recorded = [{ name: 'carol', uid: legacy(CAROL.userId), iamUserId: CAROL.userId }];
    const plan = planAdoption(local, [ALICE, BOB, CAROL, DAVE, NGINX], recorded, options);
    expect(plan.adopt).toEqual([
      { name: 'alice', uid: legacy(ALICE.userId), iamUserId: ALICE.userId, iamUserName: 'alice' },
    ]);
    expect(plan.skipped.map((s) => s.name).sort()).toEqual(['bob', 'dave', 'nginx']);
  });

  test('an account recorded for another IAM user ID is re-recorded for the IAM user whose UID it has now', () => {
    const plan = planAdoption(
      [passwd('alice', legacy(ALICE.userId))],
      [ALICE],
      [{ name: 'alice', uid: legacy(ALICE.userId), iamUserId: 'AIDAOLDALICE00000001' }],
      options,
    );
    expect(plan.adopt.map((a) => a.iamUserId)).toEqual([ALICE.userId]);
  });
});

describe('the record file format', () => {
  test('round-trips and is parsed strictly', () => {
    const text = serializeManagedAccounts([
      { name: 'bob', uid: 4242, iamUserId: 'AIDABOB0000000000001' },
      { name: 'alice', uid: 26594, iamUserId: 'AIDAALICE00000000001' },
    ]);
    expect(parseManagedAccounts(text, 'f')).toEqual([
      { name: 'alice', uid: 26594, iamUserId: 'AIDAALICE00000000001' },
      { name: 'bob', uid: 4242, iamUserId: 'AIDABOB0000000000001' },
    ]);
    for (const bad of [
      'alice:26594:AIDAALICE00000000001',
      'alice:26594\n',
      'alice:0:AIDAALICE00000000001\n',
      'Alice:26594:AIDAALICE00000000001\n',
      'alice:26594:aida:x\n',
      'alice:26594:short\n',
      ' alice:26594:AIDAALICE00000000001\n',
      '\n',
      'alice:1:AIDAALICE00000000001\nalice:2:AIDAALICE00000000002\n',
      'a:1:AIDAALICE00000000001\nb:1:AIDAALICE00000000002\n',
    ]) {
      expect(() => parseManagedAccounts(bad, 'f')).toThrow(/f line \d+/);
    }
  });

  test('a new entry replaces any with its name or UID', () => {
    const merged = mergeManagedAccounts(
      [
        { name: 'alice', uid: 1, iamUserId: 'AIDAALICE00000000001' },
        { name: 'bob', uid: 2, iamUserId: 'AIDABOB0000000000001' },
      ],
      [{ name: 'carol', uid: 2, iamUserId: 'AIDACAROL00000000001' }],
    );
    expect(merged.map((a) => a.name)).toEqual(['alice', 'carol']);
  });
});
