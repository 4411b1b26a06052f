import { expect } from '@jest/globals';
import {
  GetSSHPublicKeyCommand,
  GetUserCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { unixIdFor, type RoleConfig } from '@keymaker/core';
import { createAccountForLogin } from '../src/login/create-account';
import { ED25519, FakeHost, newIam, resolutionFor } from './fakes';

const USER_ID = 'AIDAEXAMPLEBOB000001';
const UID = unixIdFor(USER_ID, 'wide');
const DEVS_ID = 'AGPAEXAMPLEDEVS00001';
const DEVS_GID = unixIdFor(DEVS_ID, 'wide');
const iam = newIam();
const iamMock = mockClient(iam);

function group(name: string, id: string) {
  return { GroupName: name, GroupId: id, Arn: `arn:aws:iam::1:group/${name}`, Path: '/', CreateDate: new Date() };
}

function seedBob(opts: { status?: 'Active' | 'Inactive'; groups?: ReturnType<typeof group>[] } = {}) {
  const status = opts.status ?? 'Active';
  iamMock
    .on(GetUserCommand)
    .resolves({ User: { UserName: 'bob', UserId: USER_ID, Arn: 'a', Path: '/', CreateDate: new Date() } });
  iamMock.on(ListSSHPublicKeysCommand).resolves({
    SSHPublicKeys: [
      { UserName: 'bob', SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAB1', Status: status, UploadDate: new Date() },
    ],
  });
  iamMock.on(GetSSHPublicKeyCommand).resolves({
    SSHPublicKey: {
      UserName: 'bob',
      SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAB1',
      Status: status,
      SSHPublicKeyBody: ED25519,
      Fingerprint: 'x',
    },
  });
  iamMock.on(ListGroupsForUserCommand).resolves({ Groups: opts.groups ?? [] });
}

function run(host: FakeHost, user = 'bob', config: RoleConfig = {}, allowedExistingGroups: string[] = []) {
  return createAccountForLogin(
    user,
    {
      accounts: host,
      admin: host,
      resolve: async () => resolutionFor(iam, config),
      lock: (body) => body(),
      managed: host,
    },
    { allowedExistingGroups },
  );
}

beforeEach(() => iamMock.reset());

test('creates the account with the derived UID, a private group and its prefixed groups', async () => {
  seedBob({ groups: [group('keymaker_devs', DEVS_ID), group('unrelated', 'AGPAX')] });
  const host = new FakeHost();
  const outcome = await run(host);
  expect(outcome).toMatchObject({ kind: 'created', uid: UID, groups: ['devs'] });
  // The private group comes with the user in one useradd: no step between them for a kill to split.
  // Every keymaker account is in keymaker-users (sshd reads no authorized_keys file for it), made on first use.
  expect(host.changes).toEqual([
    `groupadd devs ${DEVS_GID}`,
    'groupadd --system keymaker-users',
    `useradd bob ${UID} keymaker-users,devs`,
  ]);
  expect(await host.group('bob')).toEqual({ name: 'bob', gid: UID, members: [] });
  expect(host.members('devs')).toEqual(['bob']);
});

test('a private group left by a run killed between groupadd and useradd is reused, not a refusal forever', async () => {
  seedBob();
  const host = new FakeHost({ groups: [['bob', UID]] });
  expect(await run(host)).toMatchObject({ kind: 'created', uid: UID });
  expect(host.changes).toEqual([
    'groupadd --system keymaker-users',
    `useradd bob ${UID} keymaker-users (existing private group)`,
  ]);
});

test('a same-name group with members, or with another gid, is not taken for a leftover private group', async () => {
  seedBob();
  await expect(run(new FakeHost({ groups: [['bob', UID, ['mallory']]] }))).rejects.toMatchObject({
    code: 'UID_CONFLICT',
  });
  await expect(run(new FakeHost({ groups: [['bob', 4242]] }))).rejects.toMatchObject({ code: 'UID_CONFLICT' });
});

test('an IAM group named after the user (keymaker_bob) or another local account is never created', async () => {
  seedBob({
    groups: [
      group('keymaker_bob', 'AGPAEXAMPLEBOBGRP001'),
      group('keymaker_alice', 'AGPAEXAMPLEALICE0001'),
      group('keymaker_devs', DEVS_ID),
    ],
  });
  const host = new FakeHost({ users: [['alice', 1001]] });
  const outcome = await run(host);
  expect(outcome).toMatchObject({
    kind: 'created',
    groups: ['devs'],
    skippedGroups: [expect.stringMatching(/^bob: /), expect.stringMatching(/^alice: /)],
  });
  expect(await host.group('bob')).toEqual({ name: 'bob', gid: UID, members: [] });
  expect(await host.group('alice')).toBeUndefined();
});

test('an existing account is left alone without any IAM call', async () => {
  const host = new FakeHost({ users: [['bob', 1000]] });
  expect(await run(host)).toEqual({ kind: 'exists', name: 'bob' });
  expect(iamMock.calls()).toHaveLength(0);
  expect(host.changes).toEqual([]);
});

test('refuses when the derived UID belongs to another account, naming both, creating nothing', async () => {
  seedBob();
  const host = new FakeHost({ users: [['carol', UID]] });
  await expect(run(host)).rejects.toMatchObject({
    code: 'UID_CONFLICT',
    message: expect.stringMatching(/carol.*bob|bob.*carol/),
  });
  expect(host.changes).toEqual([]);
});

test('refuses when the private group GID is taken', async () => {
  seedBob();
  const host = new FakeHost({ groups: [['carol', UID]] });
  await expect(run(host)).rejects.toMatchObject({ code: 'UID_CONFLICT' });
  expect(host.changes).toEqual([]);
});

test('an IAM user with only inactive keys gets no account', async () => {
  seedBob({ status: 'Inactive' });
  const host = new FakeHost();
  await expect(run(host)).rejects.toMatchObject({ code: 'NO_SUCH_KEY' });
  expect(host.changes).toEqual([]);
});

test('an IAM user outside the required group gets no account', async () => {
  seedBob({ groups: [group('keymaker_devs', DEVS_ID)] });
  const host = new FakeHost();
  await expect(run(host, 'bob', { requireIamGroup: 'ssh-users' })).rejects.toMatchObject({
    code: 'NOT_IN_REQUIRED_GROUP',
  });
  expect(host.changes).toEqual([]);
});

test('an unknown IAM user gets no account', async () => {
  iamMock.on(GetUserCommand).rejects(Object.assign(new Error('no'), { name: 'NoSuchEntity' }));
  iamMock.on(ListSSHPublicKeysCommand).rejects(Object.assign(new Error('no'), { name: 'NoSuchEntity' }));
  iamMock.on(ListGroupsForUserCommand).rejects(Object.assign(new Error('no'), { name: 'NoSuchEntity' }));
  const host = new FakeHost();
  await expect(run(host)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
  expect(host.changes).toEqual([]);
});

test('an invalid name makes no IAM call and creates nothing', async () => {
  const host = new FakeHost();
  await expect(run(host, '../etc')).rejects.toMatchObject({ code: 'INVALID_USERNAME' });
  await expect(run(host, 'Bob')).rejects.toMatchObject({ code: 'INVALID_USERNAME' });
  expect(iamMock.calls()).toHaveLength(0);
  expect(host.changes).toEqual([]);
});

test('a prefixed IAM group named like a system group is not joined unless allowed', async () => {
  seedBob({ groups: [group('keymaker_sudo', 'AGPASUDO'), group('keymaker_devs', DEVS_ID)] });
  const host = new FakeHost({ groups: [['sudo', 27]] });
  const outcome = await run(host);
  expect(outcome).toMatchObject({
    kind: 'created',
    groups: ['devs'],
    skippedGroups: [expect.stringContaining('sudo')],
  });
  expect(host.members('sudo')).toEqual([]);

  const allowed = new FakeHost({ groups: [['sudo', 27]] });
  expect(await run(allowed, 'bob', {}, ['sudo'])).toMatchObject({ groups: ['sudo', 'devs'] });
  expect(allowed.members('sudo')).toEqual(['bob']);
});

test('a failed useradd leaves no private group behind', async () => {
  seedBob();
  const host = new FakeHost();
  host.failOn = /^useradd/;
  await expect(run(host)).rejects.toThrow(/simulated/);
  expect(await host.group('bob')).toBeUndefined();
});

test('creating an account writes it to the record of managed accounts (name, UID, IAM user ID) before useradd', async () => {
  seedBob();
  const host = new FakeHost();
  let recordedBeforeUseradd = false;
  const addUser = host.addUser.bind(host);
  host.addUser = async (account) => {
    recordedBeforeUseradd = host.managed_.some((a) => a.name === account.name);
    return addUser(account);
  };
  expect(await run(host)).toMatchObject({ kind: 'created', uid: UID });
  expect(host.managed_).toEqual([{ name: 'bob', uid: UID, iamUserId: USER_ID }]);
  expect(recordedBeforeUseradd).toBe(true);
});

test('a record that cannot be written creates no account', async () => {
  seedBob();
  const host = new FakeHost();
  host.recordManaged = async () => {
    throw new Error('EACCES');
  };
  await expect(run(host)).rejects.toThrow('EACCES');
  expect(host.users_).toEqual([]);
});

describe('homes on EFS (issue 15)', () => {
  function runWithEfs(host: FakeHost, efsHome: NonNullable<Parameters<typeof createAccountForLogin>[1]['efsHome']>) {
    return createAccountForLogin(
      'bob',
      {
        accounts: host,
        admin: host,
        resolve: async () => resolutionFor(iam, {}),
        lock: (body) => body(),
        managed: host,
        efsHome,
      },
      { allowedExistingGroups: [] },
    );
  }

  test('share not mounted: no IAM call, no account (fail closed)', async () => {
    seedBob();
    const host = new FakeHost();
    const refused = new Error('the EFS home share is not mounted');
    const made: string[] = [];
    await expect(
      runWithEfs(host, {
        assertReady: () => {
          throw refused;
        },
        make: (a) => (made.push(a.name), 'x'),
      }),
    ).rejects.toBe(refused);
    expect(host.changes).toEqual([]);
    expect(iamMock.calls()).toHaveLength(0);
    expect(made).toEqual([]);
  });

  test('the home is made once the account exists, with its derived uid and gid', async () => {
    seedBob();
    const host = new FakeHost();
    const made: unknown[] = [];
    const outcome = await runWithEfs(host, {
      assertReady: () => undefined,
      make: (a) => (made.push({ ...a, after: [...host.changes] }), '/home/keymaker/bob created by user'),
    });
    expect(outcome).toMatchObject({ kind: 'created', home: '/home/keymaker/bob created by user' });
    expect(made).toEqual([
      {
        name: 'bob',
        uid: UID,
        gid: UID,
        after: ['groupadd --system keymaker-users', `useradd bob ${UID} keymaker-users`],
      },
    ]);
  });
});
