// IamIdentitySource over a real IAM API (moto) -> the userdb service -> Varlink through a socket.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeleteSSHPublicKeyCommand, DeleteUserCommand, RemoveUserFromGroupCommand } from '@aws-sdk/client-iam';
import { IamDirectory, resolveRoleConfig, unixIdFor } from '@keymaker/core';
import { IamDirectorySource, IamIdentitySource, type IdentityEvent } from '../src/agent/iam-identity-source';
import { startUserdbService } from '../src/agent/userdb-service';
import type { VarlinkServer } from '../src/agent/varlink';
import type { LocalAccounts } from '../src/accounts/local-accounts';
import {
  createGroupWithMembers,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
} from '../../../tools/moto/seed';
import { call } from './agent-client';

const SERVICE = 'io.keymaker.inttest';
const ACCOUNT = '333333333333';
const MANAGED_GID = 1879000000;

/** No local accounts: the host has only root-like system users, none of these names. */
const noLocalAccounts: LocalAccounts = {
  user: async () => undefined,
  userByUid: async () => undefined,
  group: async () => undefined,
  groupByGid: async () => undefined,
  users: async () => [],
  groups: async () => [],
};

describe('IamIdentitySource against moto, through the userdb Varlink service', () => {
  const endpoint = motoEndpoint();
  let tmp: string;
  let server: VarlinkServer;
  let socket: string;
  let source: IamIdentitySource;
  const events: IdentityEvent[] = [];
  let iam: ReturnType<typeof iamClient>;

  const q = (method: string, parameters: Record<string, unknown>) =>
    call(socket, `io.systemd.UserDatabase.${method}`, { service: SERVICE, ...parameters });
  /** The first resolution may miss the 1 s deadline and finish in the background: ask again (as NSS callers do). */
  async function qSettled(method: string, parameters: Record<string, unknown>) {
    let replies = await q(method, parameters);
    for (let i = 0; i < 5 && replies[0]?.error === 'io.systemd.UserDatabase.ServiceNotAvailable'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      replies = await q(method, parameters);
    }
    return replies;
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-iam-source-'));
    iam = iamClient(
      endpoint,
      await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'keymaker-test-admin', 'iam-source'),
    );
    const directory = new IamDirectory(iam, resolveRoleConfig({ requireIamGroup: 'ssh-users' }));
    source = new IamIdentitySource({
      directory: new IamDirectorySource(directory),
      accounts: noLocalAccounts,
      managedGroup: { gid: MANAGED_GID },
      log: (e) => events.push(e),
    });
    ({ server, socketPath: socket } = (await startUserdbService({ source, serviceName: SERVICE, directory: tmp })) as {
      server: VarlinkServer;
      socketPath: string;
    });
  });
  afterAll(async () => {
    await server?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('an IAM user resolves to a user record with her groups; refresh revokes her once she is deleted', async () => {
    const active = makeSshKeyPair(tmp, 'alice');
    const inactive = makeSshKeyPair(tmp, 'bob');
    const alice = await createUserWithKeys(iam, 'alice', [{ body: active.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'bob', [{ body: inactive.publicKey, status: 'Inactive' }]);
    await createUserWithKeys(iam, 'mallory', [{ body: active.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice', 'bob']);
    const devs = await createGroupWithMembers(iam, 'keymaker_devs', ['alice']);
    const uid = unixIdFor(alice.userId, 'wide');

    expect(await qSettled('GetUserRecord', { userName: 'alice' })).toEqual([
      {
        parameters: {
          record: {
            userName: 'alice',
            uid,
            gid: uid,
            realName: 'alice',
            homeDirectory: '/home/alice',
            shell: '/bin/bash',
            disposition: 'regular',
            service: SERVICE,
          },
          incomplete: false,
        },
      },
    ]);
    expect(await q('GetUserRecord', { uid })).toMatchObject([{ parameters: { record: { userName: 'alice' } } }]);
    expect(await q('GetGroupRecord', { groupName: 'devs' })).toMatchObject([
      { parameters: { record: { groupName: 'devs', gid: unixIdFor(devs.groupId, 'wide'), members: ['alice'] } } },
    ]);
    expect(await q('GetMemberships', { userName: 'alice', groupName: 'keymaker-users' })).toEqual([
      { parameters: { userName: 'alice', groupName: 'keymaker-users' } },
    ]);

    // No active key; not in the required group; reserved; no such user.
    for (const name of ['bob', 'mallory', 'root', 'nosuchuser'])
      expect(await qSettled('GetUserRecord', { userName: name })).toEqual([
        { error: 'io.systemd.UserDatabase.NoRecordFound', parameters: {} },
      ]);
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'refused', name: 'bob', reason: 'no-active-key' }),
        expect.objectContaining({ type: 'refused', name: 'mallory', reason: 'not-in-required-group' }),
        expect.objectContaining({ type: 'refused', name: 'nosuchuser', reason: 'no-iam-user' }),
      ]),
    );

    // Delete alice in IAM (keys and memberships first, as IAM requires), then refresh.
    for (const keyId of alice.keyIds)
      await iam.send(new DeleteSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyId: keyId }));
    for (const g of ['ssh-users', 'keymaker_devs'])
      await iam.send(new RemoveUserFromGroupCommand({ GroupName: g, UserName: 'alice' }));
    await iam.send(new DeleteUserCommand({ UserName: 'alice' }));
    const report = await source.refresh();
    expect(report).toMatchObject({
      checked: 1,
      revoked: [{ name: 'alice', iamUserName: 'alice', reason: 'no-iam-user' }],
      groupsRemoved: ['devs'],
    });

    const notFound = [{ error: 'io.systemd.UserDatabase.NoRecordFound', parameters: {} }];
    expect(await q('GetUserRecord', { userName: 'alice' })).toEqual(notFound);
    expect(await q('GetUserRecord', { uid })).toEqual(notFound);
    expect(await q('GetGroupRecord', { groupName: 'devs' })).toEqual(notFound);
  });
});
