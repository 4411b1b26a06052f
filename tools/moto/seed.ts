// Helpers for integration tests that talk to a moto server (see tools/moto/README.md).
//
// Multi-account in moto (verified with moto 5.2.5 server, see README):
//   - Static credentials (e.g. AWS_ACCESS_KEY_ID=testing) act in the default account 123456789012
//     as arn:aws:sts::123456789012:user/moto.
//   - sts:AssumeRole on arn:aws:iam::ACCOUNT:role/NAME succeeds even when the role does not exist, and
//     moto remembers which account the returned access key belongs to: every later call signed with
//     those credentials is served from ACCOUNT's own, separate backend. CreateRole/CreateUser there give
//     ARNs with ACCOUNT's id, and the default account does not see them (and vice versa).
//   - GetCallerIdentity with those credentials reports Account=ACCOUNT and
//     Arn=arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION.
//   - POST /moto-api/reset wipes every account AND forgets which account an assumed access key belongs to:
//     old account-B credentials then silently act in the default account. Assume again after a reset.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AddUserToGroupCommand,
  CreateGroupCommand,
  CreateRoleCommand,
  CreateUserCommand,
  IAMClient,
  UpdateSSHPublicKeyCommand,
  UploadSSHPublicKeyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';

export interface TestCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const DEFAULT_ACCOUNT_ID = '123456789012';
export const DEFAULT_REGION = 'us-east-1';
const STATIC_CREDENTIALS: TestCredentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

/** The endpoint started by tools/moto/jest-global-setup.cjs. */
export function motoEndpoint(): string {
  const ep = process.env.KEYMAKER_TEST_MOTO_ENDPOINT;
  if (!ep) throw new Error('KEYMAKER_TEST_MOTO_ENDPOINT is not set: run under the jest integration/e2e project');
  return ep;
}

export function iamClient(endpoint: string, creds: TestCredentials = STATIC_CREDENTIALS): IAMClient {
  return new IAMClient({ endpoint, region: DEFAULT_REGION, credentials: creds, maxAttempts: 1 });
}

export function stsClient(endpoint: string, creds: TestCredentials = STATIC_CREDENTIALS): STSClient {
  return new STSClient({ endpoint, region: DEFAULT_REGION, credentials: creds, maxAttempts: 1 });
}

/** Wipe all state in the moto server (all accounts). */
export async function resetMoto(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint.replace(/\/$/, '')}/moto-api/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
}

export interface SeedKey {
  body: string;
  status: 'Active' | 'Inactive';
}

/** Create an IAM user and upload SSH public keys; keys with status Inactive are deactivated after upload. */
export async function createUserWithKeys(
  iam: IAMClient,
  name: string,
  keys: SeedKey[] = [],
): Promise<{ userId: string; arn: string; keyIds: string[] }> {
  const user = (await iam.send(new CreateUserCommand({ UserName: name }))).User!;
  const keyIds: string[] = [];
  for (const key of keys) {
    const up = await iam.send(new UploadSSHPublicKeyCommand({ UserName: name, SSHPublicKeyBody: key.body }));
    const id = up.SSHPublicKey!.SSHPublicKeyId!;
    if (key.status !== 'Active') {
      await iam.send(new UpdateSSHPublicKeyCommand({ UserName: name, SSHPublicKeyId: id, Status: key.status }));
    }
    keyIds.push(id);
  }
  return { userId: user.UserId!, arn: user.Arn!, keyIds };
}

/** Create a group and add existing users to it. */
export async function createGroupWithMembers(
  iam: IAMClient,
  groupName: string,
  userNames: string[] = [],
): Promise<{ groupId: string; arn: string }> {
  const group = (await iam.send(new CreateGroupCommand({ GroupName: groupName }))).Group!;
  for (const userName of userNames) {
    await iam.send(new AddUserToGroupCommand({ GroupName: groupName, UserName: userName }));
  }
  return { groupId: group.GroupId!, arn: group.Arn! };
}

const EC2_TRUST_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});

/** Create a role (EC2 trust policy unless one is given) with a Description, e.g. keymaker config. */
export async function createRoleWithDescription(
  iam: IAMClient,
  roleName: string,
  description: string,
  assumeRolePolicyDocument: string = EC2_TRUST_POLICY,
): Promise<{ roleId: string; arn: string }> {
  const role = (
    await iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        Description: description,
        AssumeRolePolicyDocument: assumeRolePolicyDocument,
      }),
    )
  ).Role!;
  return { roleId: role.RoleId!, arn: role.Arn! };
}

async function assume(sts: STSClient, roleArn: string, sessionName: string): Promise<TestCredentials> {
  const c = (await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName }))).Credentials!;
  return { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! };
}

/**
 * Credentials that act in another AWS account inside moto. The role need not exist (moto does not
 * check); every call made with the returned credentials is served by `accountId`'s separate backend,
 * and GetCallerIdentity reports arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION.
 */
export function credentialsForAccount(
  sts: STSClient,
  accountId: string,
  roleName = 'keymaker-test-admin',
  sessionName = 'keymaker-test',
): Promise<TestCredentials> {
  return assume(sts, `arn:aws:iam::${accountId}:role/${roleName}`, sessionName);
}

/**
 * Credentials that play an EC2 instance role: GetCallerIdentity returns
 * arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION (the account is the one in roleArn).
 */
export function instanceRoleCredentials(
  sts: STSClient,
  roleArn: string,
  sessionName = 'i-0123456789abcdef0',
): Promise<TestCredentials> {
  return assume(sts, roleArn, sessionName);
}

/** Generate a real ed25519 key pair with ssh-keygen in `dir`. publicKey is "ssh-ed25519 AAAA..." with no comment. */
export function makeSshKeyPair(dir: string, name: string): { privateKeyPath: string; publicKey: string } {
  fs.mkdirSync(dir, { recursive: true });
  const privateKeyPath = path.join(dir, name);
  fs.rmSync(privateKeyPath, { force: true });
  fs.rmSync(`${privateKeyPath}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', privateKeyPath], { stdio: 'ignore' });
  const [type, blob] = fs.readFileSync(`${privateKeyPath}.pub`, 'utf8').trim().split(/\s+/);
  return { privateKeyPath, publicKey: `${type} ${blob}` };
}
