import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  GetGroupCommand,
  GetRoleCommand,
  GetSSHPublicKeyCommand,
  ListGroupsForUserCommand,
  ListRolesCommand,
  ListSSHPublicKeysCommand,
  ListUsersCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import {
  DEFAULT_ACCOUNT_ID,
  createGroupWithMembers,
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  resetMoto,
  stsClient,
} from '../../../tools/moto/seed';

const ACCOUNT_B = '222222222222';

describe('moto smoke', () => {
  const endpoint = motoEndpoint();
  const iam = iamClient(endpoint);
  const sts = stsClient(endpoint);
  let tmp: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-moto-smoke-'));
    await resetMoto(endpoint);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('seeds a user with keys, a group and a role, and reads them back', async () => {
    const active = makeSshKeyPair(tmp, 'active');
    const inactive = makeSshKeyPair(tmp, 'inactive');
    expect(active.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
    expect(fs.existsSync(active.privateKeyPath)).toBe(true);

    const alice = await createUserWithKeys(iam, 'alice', [
      { body: active.publicKey, status: 'Active' },
      { body: inactive.publicKey, status: 'Inactive' },
    ]);
    expect(alice.arn).toBe(`arn:aws:iam::${DEFAULT_ACCOUNT_ID}:user/alice`);
    expect(alice.keyIds).toHaveLength(2);

    const keys = (await iam.send(new ListSSHPublicKeysCommand({ UserName: 'alice' }))).SSHPublicKeys ?? [];
    const statusById = Object.fromEntries(keys.map((k) => [String(k.SSHPublicKeyId), k.Status] as const));
    expect(statusById).toEqual({ [alice.keyIds[0]!]: 'Active', [alice.keyIds[1]!]: 'Inactive' });
    const got = await iam.send(
      new GetSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyId: alice.keyIds[0]!, Encoding: 'SSH' }),
    );
    expect(got.SSHPublicKey?.SSHPublicKeyBody?.trim()).toBe(active.publicKey);

    await createGroupWithMembers(iam, 'admins', ['alice']);
    const group = await iam.send(new GetGroupCommand({ GroupName: 'admins' }));
    expect(group.Users?.map((u) => u.UserName)).toEqual(['alice']);
    const groups = await iam.send(new ListGroupsForUserCommand({ UserName: 'alice' }));
    expect(groups.Groups?.map((g) => g.GroupName)).toEqual(['admins']);

    const description = 'keymaker_linux_user_uid_offset=2000';
    const role = await createRoleWithDescription(iam, 'keymaker-instance', description);
    const gotRole = await iam.send(new GetRoleCommand({ RoleName: 'keymaker-instance' }));
    expect(gotRole.Role?.Description).toBe(description);
    expect(gotRole.Role?.Arn).toBe(role.arn);

    // An EC2 instance role: GetCallerIdentity returns an assumed-role ARN.
    const instCreds = await instanceRoleCredentials(sts, role.arn, 'i-0abc');
    const who = await stsClient(endpoint, instCreds).send(new GetCallerIdentityCommand({}));
    expect(who.Arn).toBe(`arn:aws:sts::${DEFAULT_ACCOUNT_ID}:assumed-role/keymaker-instance/i-0abc`);
    expect(who.Account).toBe(DEFAULT_ACCOUNT_ID);
  });

  it('acts as another account through assume-role credentials', async () => {
    const static_ = await sts.send(new GetCallerIdentityCommand({}));
    expect(static_.Arn).toBe(`arn:aws:sts::${DEFAULT_ACCOUNT_ID}:user/moto`);

    // The role does not exist in account B; moto lets us assume it anyway.
    const credsB = await credentialsForAccount(sts, ACCOUNT_B, 'keymaker-admin', 'smoke');
    const whoB = await stsClient(endpoint, credsB).send(new GetCallerIdentityCommand({}));
    expect(whoB.Account).toBe(ACCOUNT_B);
    expect(whoB.Arn).toBe(`arn:aws:sts::${ACCOUNT_B}:assumed-role/keymaker-admin/smoke`);

    // Resources created with B's credentials live in B, separate from the default account.
    const iamB = iamClient(endpoint, credsB);
    const roleB = await createRoleWithDescription(iamB, 'keymaker-in-b', 'in account b');
    expect(roleB.arn).toBe(`arn:aws:iam::${ACCOUNT_B}:role/keymaker-in-b`);
    const bob = await createUserWithKeys(iamB, 'bob');
    expect(bob.arn).toBe(`arn:aws:iam::${ACCOUNT_B}:user/bob`);

    const rolesA = (await iam.send(new ListRolesCommand({}))).Roles?.map((r) => r.RoleName) ?? [];
    const rolesB = (await iamB.send(new ListRolesCommand({}))).Roles?.map((r) => r.RoleName) ?? [];
    expect(rolesA).not.toContain('keymaker-in-b');
    expect(rolesB).toEqual(['keymaker-in-b']);
    const usersA = (await iam.send(new ListUsersCommand({}))).Users?.map((u) => u.UserName) ?? [];
    expect(usersA).not.toContain('bob');
  });
});
