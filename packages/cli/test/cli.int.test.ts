import { expect } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateUserCommand, GetUserCommand, type IAMClient } from '@aws-sdk/client-iam';
import { EXIT_CODES, unixIdFor } from '@keymaker/core';
import {
  createGroupWithMembers,
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
  type TestCredentials,
} from '../../../tools/moto/seed';
import { awsEnv, bareEnv, keymaker, writeHostConfig } from './cli-helpers';

// Each test file works in its own moto account, so files never see each other's state.
/** One key in `list_keys --json`. */
interface ListedKeyJson {
  user: string;
  keyId: string;
  status: string;
  type: string | null;
  fingerprint: string | null;
  uploadDate: string | null;
  problem?: string;
}
/** `upload_key --json`. */
interface UploadedKeyJson {
  user: string;
  keyId: string;
  status: string;
  fingerprint: string;
}
/** One group in `get_groups --json`. */
interface GroupJson {
  name: string;
  gid: number;
  iamGroup: string;
}
/** The part of `configure --json` these tests read. */
interface ConfigureJson {
  ok: boolean;
  dryRun: boolean;
  plan: { steps: { action: string }[] };
}

const ACCOUNT = '310000000001';
const RESOLVER_ACCOUNT = '310000000002';

let endpoint: string;
let admin: TestCredentials;
let iam: IAMClient;
let dir: string;
const keys: Record<string, { privateKeyPath: string; publicKey: string }> = {};

const envFor = (creds: TestCredentials, extra: Record<string, string> = {}) => awsEnv({ endpoint, ...creds }, extra);

// The lookup (what sshd runs) takes endpoints and credentials from a host config only, never from the
// environment; one root-owned host config per instance role's credentials, as `keymaker install` writes.
const hostConfigs = new Map<TestCredentials, ReturnType<typeof writeHostConfig>>();
function lookup(user: string, creds: TestCredentials) {
  let host = hostConfigs.get(creds);
  if (!host) hostConfigs.set(creds, (host = writeHostConfig({ endpoint, credentials: creds })));
  return keymaker(['get_authorized_keys', user, '--config', host.configFile], bareEnv());
}
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

beforeAll(async () => {
  endpoint = motoEndpoint();
  admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
  iam = iamClient(endpoint, admin);
  dir = mkdtempSync(join(tmpdir(), 'km-cli-'));
  for (const name of ['a1', 'a2', 'a3', 'b1', 'c1', 'x1']) keys[name] = makeSshKeyPair(dir, name);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const host of hostConfigs.values()) host.cleanup();
});

describe('key commands', () => {
  beforeAll(async () => {
    await iam.send(new CreateUserCommand({ UserName: 'alice' }));
  });

  it('upload_key from a public key file, then list_keys shows it as a table and as JSON', async () => {
    writeFileSync(join(dir, 'padded.pub'), `${keys.a1!.publicKey} alice@laptop  \n\n`);
    const up = await keymaker(['upload_key', '--identity', join(dir, 'padded.pub'), '--user', 'alice'], envFor(admin));
    expect(up).toMatchObject({ code: 0 });
    expect(up.stdout).toMatch(/^uploaded SHA256:\S+ for IAM user alice as \S+ \(Active\)/);

    const table = await keymaker(['list_keys', '--user', 'alice'], envFor(admin));
    expect(table.code).toBe(0);
    const [header, row] = table.stdout.trim().split('\n');
    expect(header).toMatch(/^KEY ID\s+STATUS\s+TYPE\s+FINGERPRINT/);
    expect(row).toMatch(/Active\s+ssh-ed25519\s+SHA256:/);

    const json = await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin));
    const listed = JSON.parse(json.stdout) as ListedKeyJson[];
    expect(listed).toEqual([expect.objectContaining({ status: 'Active', type: 'ssh-ed25519', user: 'alice' })]);
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${keys.a1!.privateKeyPath}.pub`], {
      encoding: 'utf8',
    }).split(' ')[1];
    expect(listed[0]!.fingerprint).toBe(fingerprint);
  });

  it('upload_key from a private key file uploads its public half', async () => {
    const up = await keymaker(
      ['upload_key', '--identity', keys.a2!.privateKeyPath, '--user', 'alice', '--json'],
      envFor(admin),
    );
    expect(up.code).toBe(0);
    const { keyId } = JSON.parse(up.stdout) as UploadedKeyJson;
    const listed = JSON.parse(
      (await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin))).stdout,
    ) as ListedKeyJson[];
    expect(listed.map((k) => k.keyId)).toContain(keyId);
  });

  it('disable_key, enable_key and delete_key change what list_keys shows', async () => {
    const first = (
      JSON.parse((await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin))).stdout) as ListedKeyJson[]
    )[0]!;
    expect((await keymaker(['disable_key', first.keyId, '--user', 'alice'], envFor(admin))).code).toBe(0);
    let listed = JSON.parse(
      (await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin))).stdout,
    ) as ListedKeyJson[];
    expect(listed.find((k) => k.keyId === first.keyId)?.status).toBe('Inactive');
    expect((await keymaker(['enable-key', first.keyId, '--user', 'alice'], envFor(admin))).code).toBe(0);
    listed = JSON.parse(
      (await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin))).stdout,
    ) as ListedKeyJson[];
    expect(listed.find((k) => k.keyId === first.keyId)?.status).toBe('Active');
    expect((await keymaker(['delete_key', first.keyId, '--user', 'alice'], envFor(admin))).code).toBe(0);
    listed = JSON.parse(
      (await keymaker(['list_keys', '--user', 'alice', '--json'], envFor(admin))).stdout,
    ) as ListedKeyJson[];
    expect(listed.map((k) => k.keyId)).not.toContain(first.keyId);
  });

  it('names an unknown key ID or user in one line with a distinct exit code', async () => {
    const noKey = await keymaker(['delete_key', 'APKAAAAAAAAAAAAAAAAA', '--user', 'alice'], envFor(admin));
    expect(noKey.code).toBe(EXIT_CODES.NO_SUCH_KEY);
    expect(noKey.stderr).toMatch(
      /^keymaker: no SSH key APKAAAAAAAAAAAAAAAAA for IAM user alice; run "keymaker list_keys/,
    );
    expect(noKey.stderr.trim().split('\n')).toHaveLength(1);

    const noUser = await keymaker(['list_keys', '--user', 'nobody'], envFor(admin));
    expect(noUser.code).toBe(EXIT_CODES.NO_SUCH_USER);
    expect(noUser.stderr.trim()).toBe('keymaker: no such IAM user: nobody');
  });

  it('asks for --user when the credentials are a role', async () => {
    const result = await keymaker(['list_keys'], envFor(admin));
    expect(result.code).toBe(EXIT_CODES.ROLE_CREDENTIALS);
    expect(result.stderr).toMatch(/role credentials .* pass --user NAME/);
  });

  it('uses the current IAM user without --user', async () => {
    // moto's static credentials belong to IAM user "moto" of its default account.
    const staticCreds = { accessKeyId: 'testing', secretAccessKey: 'testing' };
    const defaultIam = iamClient(endpoint);
    await defaultIam.send(new CreateUserCommand({ UserName: 'moto' })).catch(() => undefined);
    const up = await keymaker(['upload_key', '--identity', `${keys.x1!.privateKeyPath}.pub`], envFor(staticCreds));
    expect(up.stderr).toBe('');
    expect(up.stdout).toMatch(/for IAM user moto/);
  });

  it('upload_key refuses several agent keys and asks for --identity', async () => {
    const agent = execFileSync('ssh-agent', ['-s'], { encoding: 'utf8' });
    const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(agent)![1]!;
    const pid = /SSH_AGENT_PID=(\d+);/.exec(agent)![1]!;
    try {
      execFileSync('ssh-add', [keys.b1!.privateKeyPath, keys.c1!.privateKeyPath], {
        env: { SSH_AUTH_SOCK: sock },
        stdio: 'ignore',
      });
      const result = await keymaker(['upload_key', '--user', 'alice'], envFor(admin, { SSH_AUTH_SOCK: sock }));
      expect(result.code).toBe(EXIT_CODES.INVALID_ARGUMENT);
      expect(result.stderr).toMatch(/ssh-agent holds 2 keys; choose one with --identity FILE/);
      execFileSync('ssh-add', ['-d', `${keys.c1!.privateKeyPath}.pub`], {
        env: { SSH_AUTH_SOCK: sock },
        stdio: 'ignore',
      });
      const single = await keymaker(
        ['upload_key', '--user', 'alice', '--json'],
        envFor(admin, { SSH_AUTH_SOCK: sock }),
      );
      expect(single.code).toBe(0);
    } finally {
      process.kill(Number(pid));
    }
  });

  it('refuses a file that is not a key, and a missing file', async () => {
    writeFileSync(join(dir, 'junk.pub'), 'hello world\n');
    const junk = await keymaker(['upload_key', '--identity', join(dir, 'junk.pub'), '--user', 'alice'], envFor(admin));
    expect(junk.code).toBe(EXIT_CODES.INVALID_SSH_KEY);
    const missing = await keymaker(['upload_key', '--identity', join(dir, 'nope'), '--user', 'alice'], envFor(admin));
    expect(missing.code).toBe(EXIT_CODES.FILE_NOT_FOUND);
    expect(missing.stderr).toMatch(/does not exist; pass an existing file to --identity/);
  });
});

asRoot('lookups through the instance role', () => {
  let instance: TestCredentials;
  let dave: { userId: string };

  beforeAll(async () => {
    const role = await createRoleWithDescription(
      iam,
      'web',
      'Web fleet. keymaker_require_iam_group=ssh_users, keymaker_linux_group_prefix=km_',
    );
    instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    dave = await createUserWithKeys(iam, 'dave', [
      { body: keys.a1!.publicKey, status: 'Active' },
      { body: keys.a2!.publicKey, status: 'Inactive' },
      { body: keys.a3!.publicKey, status: 'Active' },
    ]);
    await createUserWithKeys(iam, 'erin', [{ body: keys.b1!.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh_users', ['dave']);
    await createGroupWithMembers(iam, 'km_devs', ['dave', 'erin']);
    await createGroupWithMembers(iam, 'km_ops', ['dave']);
    await createGroupWithMembers(iam, 'unrelated', ['dave']);
  });

  it('get_authorized_keys prints exactly the active keys, one line each', async () => {
    const result = await lookup('dave', instance);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n').filter(Boolean).sort()).toEqual([keys.a1!.publicKey, keys.a3!.publicKey].sort());
    expect(result.stdout).not.toContain(keys.a2!.publicKey);
  });

  it('refuses a user outside the required group, printing nothing', async () => {
    const result = await lookup('erin', instance);
    expect(result.code).toBe(EXIT_CODES.NOT_IN_REQUIRED_GROUP);
    expect(result.stdout).toBe('');
  });

  it('refuses an unknown user and an invalid name, printing nothing', async () => {
    const unknown = await lookup('zed', instance);
    expect(unknown).toMatchObject({ code: EXIT_CODES.NO_SUCH_USER, stdout: '' });
    const invalid = await lookup('Root;rm', instance);
    expect(invalid).toMatchObject({ code: EXIT_CODES.INVALID_USERNAME, stdout: '' });
  });

  it('get_uid derives the UID from the IAM user ID (wide scheme by default)', async () => {
    const result = await keymaker(['get_uid', 'dave'], envFor(instance));
    expect(result).toMatchObject({ code: 0, stdout: `${unixIdFor(dave.userId, 'wide')}\n` });
  });

  it('get_groups prints the prefixed groups without the prefix', async () => {
    const result = await keymaker(['get_groups', 'dave'], envFor(instance));
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n').sort()).toEqual(['devs', 'ops']);
    const json = JSON.parse((await keymaker(['get_groups', 'dave', '--json'], envFor(instance))).stdout) as GroupJson[];
    expect(json).toContainEqual(
      expect.objectContaining({ name: 'devs', iamGroup: 'km_devs', gid: expect.any(Number) }),
    );
  });

  it('fails closed on an invalid role description', async () => {
    const role = await createRoleWithDescription(
      iam,
      'broken',
      'keymaker_require_iam_group=a keymaker_require_iam_group=b',
    );
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const result = await lookup('dave', creds);
    expect(result).toMatchObject({ code: EXIT_CODES.INVALID_ROLE_CONFIG, stdout: '' });
  });
});

asRoot('cross-account resolution and the legacy UID scheme', () => {
  it('resolves users in the ID-resolver account through its role', async () => {
    const resolverAdmin = await credentialsForAccount(stsClient(endpoint), RESOLVER_ACCOUNT, 'admin');
    const resolverIam = iamClient(endpoint, resolverAdmin);
    const frank = await createUserWithKeys(resolverIam, 'frank@corp', [{ body: keys.c1!.publicKey, status: 'Active' }]);
    await createRoleWithDescription(resolverIam, 'KeymakerIdResolver', 'resolver');
    const role = await createRoleWithDescription(
      iam,
      'federated',
      `keymaker_id_resolver_account=${RESOLVER_ACCOUNT} keymaker_id_resolver_iam_role=KeymakerIdResolver keymaker_linux_user_suffix=@corp keymaker_uid_scheme=legacy`,
    );
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const result = await lookup('frank', creds);
    expect(result).toMatchObject({ code: 0, stdout: `${keys.c1!.publicKey}\n` });
    // frank exists only in the resolver account.
    await expect(iam.send(new GetUserCommand({ UserName: 'frank@corp' }))).rejects.toThrow();
    const uid = await keymaker(['get_uid', 'frank'], envFor(creds));
    expect(uid.stdout).toBe(`${unixIdFor(frank.userId, 'legacy')}\n`);
    expect(Number(uid.stdout)).toBeLessThanOrEqual(34767);
  });
});

describe('configure', () => {
  it('plans with --dry-run, applies, then finds nothing to change', async () => {
    const args = ['configure', '--instance-iam-role', 'bastion', '--require-iam-group', 'ops'];
    const dry = await keymaker([...args, '--dry-run', '--json'], envFor(admin));
    expect(dry.code).toBe(0);
    const planned = JSON.parse(dry.stdout) as ConfigureJson;
    expect(planned).toMatchObject({ ok: true, dryRun: true });
    expect(planned.plan.steps.map((s) => s.action)).toEqual(
      expect.arrayContaining(['createPolicy', 'createRole', 'attachRolePolicy', 'updateRoleDescription']),
    );
    const applied = await keymaker(args, envFor(admin));
    expect(applied.code).toBe(0);
    const again = await keymaker(args, envFor(admin));
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to change/);
  });

  it('refuses a malformed role ARN in one line, changing nothing', async () => {
    const result = await keymaker(['configure', '--instance-iam-role', 'arn:aws:iam::12:role/x'], envFor(admin));
    expect(result.code).toBe(EXIT_CODES.INVALID_ARGUMENT);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('friendly failures', () => {
  it('no credentials', async () => {
    const env = envFor({ accessKeyId: '', secretAccessKey: '' });
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const result = await keymaker(['list_keys', '--user', 'alice'], env);
    expect(result.code).toBe(EXIT_CODES.NO_CREDENTIALS);
    expect(result.stderr.trim()).toMatch(/^keymaker: no AWS credentials found; configure them/);
  });

  it('no region is not a failure: IAM is global (signed for us-east-1, as the AWS CLI does)', async () => {
    const env = envFor(admin);
    delete env.AWS_REGION;
    const result = await keymaker(['list_keys', '--user', 'alice'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('no arguments prints usage and exits 1; --version prints the version', async () => {
    const none = await keymaker([], envFor(admin));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/Usage: keymaker <command>/);
    const version = await keymaker(['--version'], envFor(admin));
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('an unknown option is a usage error, not a stack trace', async () => {
    const result = await keymaker(['list_keys', '--bogus'], envFor(admin));
    expect(result.code).toBe(EXIT_CODES.USAGE);
    expect(result.stderr).toBe('keymaker: list_keys: Unknown argument: bogus; run "keymaker help list_keys"\n');
  });
});
