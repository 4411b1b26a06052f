// Issue 13, point 11, on a real sshd: an IAM user named like a package's service
// account (postgres) has a valid key and is in the required group, and still gets
// no account and no login; a normal IAM user logs in. Names the host config adds
// (reservedNames) are refused the same way.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
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
import { DEFAULT_PATHS } from '../src/system/paths';
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

describeWithSandbox('reserved names on a real sshd', () => {
  let sb: Sandbox;
  let bundle: string;
  let keys: string;
  let iam: IAMClient;
  let port: number;
  let postgresId: string;
  const pair: Record<string, { privateKeyPath: string; publicKey: string }> = {};

  beforeAll(async () => {
    const endpoint = motoEndpoint();
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-reserved-e2e.'));
    for (const name of ['nina', 'postgres', 'appsvc']) pair[name] = makeSshKeyPair(keys, name);
    bundle = await buildHostBundle();

    const account = randomAccountId();
    const admin = await credentialsForAccount(stsClient(endpoint), account);
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(
      iam,
      'keymaker-instance',
      'db servers keymaker_require_iam_group=ssh-users',
    );
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);

    await createUserWithKeys(iam, 'nina', [{ body: pair.nina!.publicKey, status: 'Active' }]);
    postgresId = (await createUserWithKeys(iam, 'postgres', [{ body: pair.postgres!.publicKey, status: 'Active' }]))
      .userId;
    await createUserWithKeys(iam, 'appsvc', [{ body: pair.appsvc!.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['nina', 'postgres', 'appsvc']);
    await createGroupWithMembers(iam, 'keymaker_dba', ['nina', 'postgres']);

    sb = await createSandbox();
    // The package is not installed yet (the point: it creates postgres later). /etc is the sandbox's overlay.
    await sb.exec(['userdel', 'postgres']);
    await sb.exec(['groupdel', 'postgres']);
    expect(await passwdEntry(sb, 'postgres')).toBeUndefined();
    await installByHand(sb, bundle, hostConfigFor(endpoint, { reservedNames: ['appsvc'] }), instance);
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    fs.rmSync(keys, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('a normal IAM user gets an account and logs in', async () => {
    const first = await sshShowingPamText(port, 'nina', pair.nina!.privateKeyPath);
    expect(first.stdout + first.stderr).toContain('if this was yours, connect again');
    const second = await sb.ssh('nina', { identityFile: pair.nina!.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'nina' });
  });

  test('IAM user postgres with a valid key gets no account and no login, logged as reserved', async () => {
    const r1 = await sshShowingPamText(port, 'postgres', pair.postgres!.privateKeyPath);
    const r2 = await sb.ssh('postgres', {
      identityFile: pair.postgres!.privateKeyPath,
      command: 'id -un',
      batch: true,
    });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(r1.stdout + r1.stderr).not.toContain('created');
    expect(await passwdEntry(sb, 'postgres')).toBeUndefined();
    expect(
      (await syslogLines(sb)).some((l) =>
        /create_account user="postgres".*decision=refused reason=NOT_MANAGED: .*reserved/.test(l),
      ),
    ).toBe(true);
  });

  test('an account postgres that looks like a keymaker one (derived UID) is still never served keys', async () => {
    // As if an older keymaker had created it: the lookup itself must refuse the name.
    const uid = unixIdFor(postgresId, 'wide');
    await sb.execOk(['groupadd', '-g', String(uid), 'postgres']);
    await sb.execOk(['useradd', '-u', String(uid), '-g', String(uid), '-m', '-s', '/bin/bash', 'postgres']);
    const r = await sb.ssh('postgres', { identityFile: pair.postgres!.privateKeyPath, command: 'id -un', batch: true });
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    const direct = await sb.exec([DEFAULT_PATHS.authorizedKeysCommand, 'postgres']);
    expect(direct.stdout).toBe('');
    const log = await syslogLines(sb);
    expect(log.some((l) => /lookup user="postgres".*decision=refused reason=NOT_MANAGED: .*reserved/.test(l))).toBe(
      true,
    );
    expect(log.join('\n')).not.toMatch(/lookup user="postgres".*decision=keys/);
  });

  test('a name the host config reserves (reservedNames) is refused the same way', async () => {
    const r1 = await sshShowingPamText(port, 'appsvc', pair.appsvc!.privateKeyPath);
    const r2 = await sb.ssh('appsvc', { identityFile: pair.appsvc!.privateKeyPath, command: 'id -un', batch: true });
    expect([r1.code, r2.code]).toEqual([255, 255]);
    expect(await passwdEntry(sb, 'appsvc')).toBeUndefined();
    expect(
      (await syslogLines(sb)).some((l) =>
        /create_account user="appsvc".*decision=refused reason=NOT_MANAGED: .*reserved/.test(l),
      ),
    ).toBe(true);
  });

  test('sync puts nina in dba and leaves postgres out, saying why', async () => {
    const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand], { timeoutMs: 90_000 });
    expect(r.stderr).toMatch(/skipped postgres in dba: its name is reserved/);
    expect((await sb.execOk(['getent', 'group', 'dba'])).stdout).toMatch(/^dba:x:\d+:nina$/m);
  });
});
