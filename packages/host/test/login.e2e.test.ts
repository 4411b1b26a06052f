// The login path on a real sshd: JIT account creation through PAM, the lookup's refusals,
// and cross-account resolution, each with a real ssh connection.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DeleteSSHPublicKeyCommand,
  ListSSHPublicKeysCommand,
  UpdateSSHPublicKeyCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { unixIdFor } from '@keymaker/core';
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
import {
  buildHostBundle,
  hostConfigFor,
  installByHand,
  passwdEntry,
  randomAccountId,
  sshShowingPamText,
  syslogLines,
} from './e2e-host';

jest.setTimeout(120_000);

describeWithSandbox('login path on a real sshd', () => {
  let sb: Sandbox;
  let bundle: string;
  let keys: string;
  let iam: IAMClient;
  let port: number;
  const pair: Record<string, { privateKeyPath: string; publicKey: string }> = {};

  beforeAll(async () => {
    const endpoint = motoEndpoint();
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-login-e2e.'));
    for (const name of ['alice', 'alice2', 'ivan', 'dave', 'oscar', 'root', 'ubuntu', 'stranger'])
      pair[name] = makeSshKeyPair(keys, name);
    bundle = await buildHostBundle();

    // One moto account of our own; the "instance role" there requires the IAM group ssh-users.
    const account = randomAccountId();
    const admin = await credentialsForAccount(stsClient(endpoint), account);
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(
      iam,
      'keymaker-instance',
      'web servers keymaker_require_iam_group=ssh-users',
    );
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);

    await createUserWithKeys(iam, 'alice', [
      { body: pair.alice!.publicKey, status: 'Active' },
      { body: pair.alice2!.publicKey, status: 'Active' },
    ]);
    await createUserWithKeys(iam, 'ivan', [{ body: pair.ivan!.publicKey, status: 'Inactive' }]);
    const dave = await createUserWithKeys(iam, 'dave', [{ body: pair.dave!.publicKey, status: 'Active' }]);
    await iam.send(new DeleteSSHPublicKeyCommand({ UserName: 'dave', SSHPublicKeyId: dave.keyIds[0]! }));
    await createUserWithKeys(iam, 'oscar', [{ body: pair.oscar!.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'root', [{ body: pair.root!.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'ubuntu', [{ body: pair.ubuntu!.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice', 'ivan', 'dave', 'root', 'ubuntu']);
    await createGroupWithMembers(iam, 'keymaker_devs', ['alice']);

    sb = await createSandbox();
    await installByHand(sb, bundle, hostConfigFor(endpoint), instance);
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    fs.rmSync(keys, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('first connection creates the account, the second logs in', async () => {
    expect(await passwdEntry(sb, 'alice')).toBeUndefined();
    const first = await sshShowingPamText(port, 'alice', pair.alice!.privateKeyPath);
    expect(first.code).toBe(255);
    expect(first.stdout + first.stderr).toContain('if this was yours, connect again');

    const entry = await passwdEntry(sb, 'alice');
    const uid = Number(entry!.split(':')[2]);
    expect(entry).toMatch(/^alice:x:\d+:\d+:keymaker IAM user alice:\/home\/alice:\/bin\/bash$/);
    expect(uid).toBeGreaterThanOrEqual(0x70000000);
    expect(await sb.exists('/home/alice')).toBe(true);
    // Its prefixed IAM group became a Linux group with alice in it.
    expect((await sb.execOk(['getent', 'group', 'devs'])).stdout).toMatch(/^devs:x:\d+:alice$/m);

    const second = await sb.ssh('alice', { identityFile: pair.alice!.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'alice' });

    const log = await syslogLines(sb);
    expect(log.some((l) => /keymaker\[\d+\].*create_account user="alice".*decision=created/.test(l))).toBe(true);
    expect(
      log.some((l) =>
        /lookup user="alice" fingerprint=SHA256:\S+ decision=keys reason=iam_keys iam_user=alice keys=2/.test(l),
      ),
    ).toBe(true);
    expect(log.join('\n')).not.toContain(pair.alice!.publicKey.split(' ')[1]);
  });

  test('a wrong key is refused', async () => {
    const r = await sb.ssh('alice', { identityFile: pair.stranger!.privateKeyPath, command: 'id -un', batch: true });
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    // Refused live (listed keys do not match) or, within 10 s of a live answer, from the per-name cache.
    expect(
      (await syslogLines(sb)).some((l) =>
        /lookup user="alice".*(offered_key_listed=no|decision=refused reason=NO_SUCH_KEY cached=yes)/.test(l),
      ),
    ).toBe(true);
  });

  test('a key made inactive in IAM is refused at once', async () => {
    const ok = await sb.ssh('alice', { identityFile: pair.alice2!.privateKeyPath, command: 'id -un', batch: true });
    expect(ok.code).toBe(0);
    const listed = await iam.send(new ListSSHPublicKeysCommand({ UserName: 'alice' }));
    const setAll = async (Status: 'Active' | 'Inactive') => {
      for (const k of listed.SSHPublicKeys!)
        await iam.send(new UpdateSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyId: k.SSHPublicKeyId!, Status }));
    };
    await setAll('Inactive');
    try {
      const r = await sb.ssh('alice', { identityFile: pair.alice2!.privateKeyPath, command: 'id -un', batch: true });
      expect(r.code).toBe(255);
      expect(
        (await syslogLines(sb)).some((l) => /lookup user="alice".*reason=no_active_keys iam_user=alice keys=0/.test(l)),
      ).toBe(true);
    } finally {
      await setAll('Active');
    }
  });

  test('an IAM user whose only key is inactive gets no account and no login', async () => {
    const r1 = await sb.ssh('ivan', { identityFile: pair.ivan!.privateKeyPath, command: 'id -un' });
    const r2 = await sb.ssh('ivan', { identityFile: pair.ivan!.privateKeyPath, command: 'id -un' });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(r1.stderr).not.toContain('created');
    expect(await passwdEntry(sb, 'ivan')).toBeUndefined();
    expect(
      (await syslogLines(sb)).some((l) => /create_account user="ivan".*decision=refused reason=NO_SUCH_KEY/.test(l)),
    ).toBe(true);
  });

  test('an IAM user whose key was deleted gets no account and no login', async () => {
    const r1 = await sb.ssh('dave', { identityFile: pair.dave!.privateKeyPath, command: 'id -un' });
    const r2 = await sb.ssh('dave', { identityFile: pair.dave!.privateKeyPath, command: 'id -un' });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(await passwdEntry(sb, 'dave')).toBeUndefined();
    expect(
      (await syslogLines(sb)).some((l) => /create_account user="dave".*decision=refused reason=NO_SUCH_KEY/.test(l)),
    ).toBe(true);
  });

  test('an IAM user outside the required group gets no account and no login', async () => {
    const r1 = await sb.ssh('oscar', { identityFile: pair.oscar!.privateKeyPath, command: 'id -un' });
    const r2 = await sb.ssh('oscar', { identityFile: pair.oscar!.privateKeyPath, command: 'id -un' });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(await passwdEntry(sb, 'oscar')).toBeUndefined();
    expect(
      (await syslogLines(sb)).some((l) =>
        /create_account user="oscar".*decision=refused reason=NOT_IN_REQUIRED_GROUP/.test(l),
      ),
    ).toBe(true);
  });

  test('an IAM user named root cannot log in as root', async () => {
    const r = await sb.ssh('root', { identityFile: pair.root!.privateKeyPath, command: 'id -un' });
    expect(r.code).toBe(255);
    expect(
      (await syslogLines(sb)).some((l) =>
        /lookup user="root" fingerprint=SHA256:\S+ decision=refused reason=NOT_MANAGED/.test(l),
      ),
    ).toBe(true);
  });

  test('a pre-existing local user is not taken over by an authorized IAM user of the same name', async () => {
    await sb.execOk(['useradd', '--create-home', 'ubuntu']);
    const r = await sb.ssh('ubuntu', { identityFile: pair.ubuntu!.privateKeyPath, command: 'id -un' });
    expect(r.code).toBe(255);
    expect(
      (await syslogLines(sb)).some((l) => /lookup user="ubuntu".*decision=refused reason=NOT_MANAGED/.test(l)),
    ).toBe(true);
  });
});

describeWithSandbox('cross-account resolution through an ID-resolver role', () => {
  let sb: Sandbox;
  let bundle: string;
  let keys: string;

  afterAll(async () => {
    await sb?.destroy();
    if (keys) fs.rmSync(keys, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('a user who exists only in the resolver account is created and logs in', async () => {
    const endpoint = motoEndpoint();
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-xacct-e2e.'));
    const erin = makeSshKeyPair(keys, 'erin');
    bundle = await buildHostBundle();

    const instanceAccount = randomAccountId();
    const resolverAccount = randomAccountId();
    const adminA = await credentialsForAccount(stsClient(endpoint), instanceAccount);
    const adminB = await credentialsForAccount(stsClient(endpoint), resolverAccount);
    const iamA = iamClient(endpoint, adminA);
    const iamB = iamClient(endpoint, adminB);
    const role = await createRoleWithDescription(
      iamA,
      'keymaker-instance',
      `keymaker_id_resolver_account=${resolverAccount} keymaker_id_resolver_iam_role=keymaker-resolver`,
    );
    await createRoleWithDescription(iamB, 'keymaker-resolver', 'resolves keymaker users');
    const erinUser = await createUserWithKeys(iamB, 'erin', [{ body: erin.publicKey, status: 'Active' }]);
    const instance = await instanceRoleCredentials(stsClient(endpoint, adminA), role.arn);

    sb = await createSandbox();
    await installByHand(sb, bundle, hostConfigFor(endpoint), instance);

    const first = await sshShowingPamText((await sb.startSshd()).port, 'erin', erin.privateKeyPath);
    expect(first.stdout + first.stderr).toContain('if this was yours, connect again');
    expect(Number((await passwdEntry(sb, 'erin'))!.split(':')[2])).toBe(unixIdFor(erinUser.userId, 'wide'));
    const second = await sb.ssh('erin', { identityFile: erin.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'erin' });
  });
});
