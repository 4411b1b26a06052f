// Issue 13 point 1 on a real sshd: root's own AWS credentials (AWS_* variables, /root/.aws) of a
// non-role identity must not decide who logs in. Today they win over the host config's instance
// role, sync caches "no role config" for them, and every lookup then trusts that cache, so the
// required IAM group is bypassed.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateAccessKeyCommand, CreateUserCommand, type IAMClient } from '@aws-sdk/client-iam';
import { createSandbox, describeWithSandbox, type Sandbox } from '../../../tools/sandbox/sandbox';
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
} from '../../../tools/moto/seed';
import { DEFAULT_PATHS } from '../src/system/paths';
import {
  buildHostBundle,
  credentialsFileText,
  hostConfigFor,
  installByHand,
  passwdEntry,
  randomAccountId,
  syslogLines,
} from './e2e-host';

jest.setTimeout(180_000);

describeWithSandbox("root's own AWS credentials on a real sshd", () => {
  let sb: Sandbox;
  let bundle: string;
  let keys: string;
  let iam: IAMClient;
  let rootEnv: Record<string, string>;
  const pair: Record<string, { privateKeyPath: string; publicKey: string }> = {};
  const lookupAsSshd = (name: string) =>
    sb.exec(['runuser', '-u', 'keymaker', '--', DEFAULT_PATHS.authorizedKeysCommand, name, 'SHA256:abc']);

  beforeAll(async () => {
    const endpoint = motoEndpoint();
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-rootcreds-e2e.'));
    for (const name of ['alice', 'oscar']) pair[name] = makeSshKeyPair(keys, name);
    bundle = await buildHostBundle();

    const account = randomAccountId();
    const admin = await credentialsForAccount(stsClient(endpoint), account);
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(
      iam,
      'keymaker-instance',
      'web servers keymaker_require_iam_group=ssh-users',
    );
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    await createUserWithKeys(iam, 'alice', [{ body: pair.alice!.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'oscar', [{ body: pair.oscar!.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice']);

    // Root's own credentials: an IAM user's access key (GetCallerIdentity: arn:aws:iam::...:user/root-admin).
    await iam.send(new CreateUserCommand({ UserName: 'root-admin' }));
    const key = (await iam.send(new CreateAccessKeyCommand({ UserName: 'root-admin' }))).AccessKey!;
    rootEnv = {
      AWS_ACCESS_KEY_ID: key.AccessKeyId!,
      AWS_SECRET_ACCESS_KEY: key.SecretAccessKey!,
      AWS_PROFILE: 'default',
      AWS_SHARED_CREDENTIALS_FILE: '/root/.aws/credentials',
    };

    sb = await createSandbox();
    await installByHand(sb, bundle, hostConfigFor(endpoint), instance);
    await sb.execOk(['mkdir', '-p', '-m', '0700', '/root/.aws']);
    await sb.writeFile(
      '/root/.aws/credentials',
      credentialsFileText({ accessKeyId: key.AccessKeyId!, secretAccessKey: key.SecretAccessKey! }),
      0o600,
    );
    await sb.startSshd();
  });

  afterAll(async () => {
    await sb?.destroy();
    fs.rmSync(keys, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('a sync run with root-owned user credentials caches nothing the lookup trusts: outside the required group, no key, no login', async () => {
    const sync = await sb.exec([DEFAULT_PATHS.syncGroupsCommand], { env: rootEnv, timeoutMs: 90_000 });
    expect(sync.code).toBe(0); // ran as the instance role (the host config's credentials file), not as root-admin

    const lookup = await lookupAsSshd('oscar');
    expect(lookup.stdout).toBe('');
    expect(lookup.code).not.toBe(0);

    const r1 = await sb.ssh('oscar', { identityFile: pair.oscar!.privateKeyPath, command: 'id -un' });
    const r2 = await sb.ssh('oscar', { identityFile: pair.oscar!.privateKeyPath, command: 'id -un' });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(await passwdEntry(sb, 'oscar')).toBeUndefined();
    const log = (await syslogLines(sb)).join('\n');
    expect(log).toMatch(/user="oscar".*NOT_IN_REQUIRED_GROUP/);
  });

  test('the right user still logs in', async () => {
    await sb.ssh('alice', { identityFile: pair.alice!.privateKeyPath, command: 'id -un' });
    const second = await sb.ssh('alice', { identityFile: pair.alice!.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'alice' });
    // The lookup as sshd runs it, with alice's real key offered: her key is printed.
    const pub = path.join(keys, 'alice-offered.pub');
    fs.writeFileSync(pub, `${pair.alice!.publicKey}\n`);
    const fingerprint = execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }).split(' ')[1]!;
    const lookup = await sb.exec([
      'runuser',
      '-u',
      'keymaker',
      '--',
      DEFAULT_PATHS.authorizedKeysCommand,
      'alice',
      fingerprint,
    ]);
    expect(lookup.code).toBe(0);
    expect(lookup.stdout).toContain(pair.alice!.publicKey.split(' ')[1]);
  });

  test('with no credentials in the host config, root-owned user credentials are an error naming the ARN, never "no config"', async () => {
    const config = hostConfigFor(motoEndpoint());
    delete config.sharedCredentialsFile; // the instance role via IMDS (nothing answers at metadataEndpoint here)
    const file = '/etc/keymaker/config-imds.json';
    await sb.writeFile(file, `${JSON.stringify(config, null, 2)}\n`, 0o644);
    const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand, '--dry-run', '--config', file], {
      env: rootEnv,
      timeoutMs: 90_000,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toContain('root-admin'); // root-admin's keys were not used at all
    expect(r.stderr).toMatch(/nothing was changed/);
  });

  test("a host config whose credentials are an IAM user's is an error naming the ARN and the fix", async () => {
    const config = { ...hostConfigFor(motoEndpoint()), sharedCredentialsFile: '/root/.aws/credentials' };
    const file = '/etc/keymaker/config-user.json';
    await sb.writeFile(file, `${JSON.stringify(config, null, 2)}\n`, 0o644);
    const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand, '--dry-run', '--config', file], { timeoutMs: 90_000 });
    expect(r.code).toBe(23); // NO_INSTANCE_ROLE
    expect(r.stderr).toMatch(/arn:aws:iam::\d{12}:user\/root-admin/);
    expect(r.stderr).toContain("keymaker's host commands must run with the instance role");
  });
});
