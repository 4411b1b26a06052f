// Issue 13, point 4, on a real sshd and the real `keymaker install`: under the legacy (1.x) UID
// scheme an IAM user re-created ~32,000 times derives a UID equal to a hand-made local account's.
// Instead of grinding, the local account is made by hand (useradd -u) with the UID IAM alice
// derives. keymaker must not log that IAM user into it, until an administrator adopts it with
// `keymaker install --adopt-legacy-accounts`. A JIT-created account is recorded and logs in.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
import { unixIdFor } from '@keymaker/core';
import { createSandbox, describeWithSandbox, type Sandbox } from '../../../tools/sandbox/sandbox';
import {
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
  credentialsFileText,
  installArgs,
  randomAccountId,
  REPO_ROOT,
  sshShowingPamText,
  startSyslogListener,
  SYSLOG_SOCKET,
  syslogLines,
} from './e2e-host';

jest.setTimeout(180_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');

describeWithSandbox('existing local accounts and the record of managed accounts', () => {
  let sb: Sandbox;
  let tmp: string;
  let iam: IAMClient;
  let endpoint: string;
  let port: number;
  let aliceUid: number;
  const pair: Record<string, { privateKeyPath: string; publicKey: string }> = {};

  const install = (extra: string[] = []) =>
    sb.exec(['node', CLI, ...installArgs(endpoint, port), ...extra], { timeoutMs: 90_000 });

  beforeAll(async () => {
    if (!fs.existsSync(CLI))
      throw new Error(`${CLI} is missing: build first (NX_DAEMON=false npx nx run-many -t build)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-adopt-e2e.'));
    for (const name of ['alice', 'bob']) pair[name] = makeSshKeyPair(tmp, name);
    fs.chmodSync(tmp, 0o755);

    endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-host', 'adopt e2e keymaker_uid_scheme=legacy');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const alice = await createUserWithKeys(iam, 'alice', [{ body: pair.alice!.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'bob', [{ body: pair.bob!.publicKey, status: 'Active' }]);
    aliceUid = unixIdFor(alice.userId, 'legacy');

    sb = await createSandbox();
    // The hand-made local account whose UID IAM alice derives (what grinding UIDs would reach).
    await sb.execOk(['useradd', '--create-home', '--uid', String(aliceUid), '--shell', '/bin/bash', 'alice']);
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    ({ port } = await sb.startSshd());
    const r = await install();
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.stringContaining('reloaded sshd') });
    const config = JSON.parse(await sb.readFile(DEFAULT_PATHS.configFile)) as Record<string, unknown>;
    await sb.writeFile(
      DEFAULT_PATHS.configFile,
      `${JSON.stringify({ ...config, syslogSocket: SYSLOG_SOCKET }, null, 2)}\n`,
      0o644,
    );
    await startSyslogListener(sb);
  });

  afterAll(async () => {
    await sb?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("a hand-made account whose UID equals the IAM user's derived UID is not logged into with that IAM user's key", async () => {
    const r = await sb.ssh('alice', { identityFile: pair.alice!.privateKeyPath, command: 'id -un', batch: true });
    expect(r.code).toBe(255);
    expect(r.stdout).not.toContain('alice');
    expect(
      (await syslogLines(sb)).some((l) =>
        /lookup user="alice" .*decision=refused reason=NOT_MANAGED.*not in keymaker's record/.test(l),
      ),
    ).toBe(true);
  });

  test('a JIT-created account is recorded (root:root 0644) and logs in on the second connection', async () => {
    const first = await sshShowingPamText(port, 'bob', pair.bob!.privateKeyPath);
    expect(first.code).toBe(255);
    const uid = Number((await sb.execOk(['id', '-u', 'bob'])).stdout.trim());
    const record = await sb.readFile(DEFAULT_PATHS.managedAccounts);
    expect(record).toMatch(new RegExp(`^bob:${uid}:\\w{16,}$`, 'm'));
    expect(record).not.toMatch(/^alice:/m);
    expect((await sb.execOk(['stat', '-c', '%U:%G %a', DEFAULT_PATHS.managedAccounts])).stdout.trim()).toBe(
      'root:root 644',
    );
    const second = await sb.ssh('bob', { identityFile: pair.bob!.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'bob' });
  });

  test('after `keymaker install --adopt-legacy-accounts` the account is served, and only with IAM keys', async () => {
    // Before adoption alice is a local account: her own authorized_keys works.
    await sb.writeFile('/home/alice/.ssh/authorized_keys', `${pair.bob!.publicKey}\n`, 0o600, 'alice:alice');
    await sb.execOk(['chown', 'alice:alice', '/home/alice/.ssh']);
    await sb.execOk(['chmod', '700', '/home/alice/.ssh']);
    const own = await sb.ssh('alice', { identityFile: pair.bob!.privateKeyPath, command: 'id -un', batch: true });
    expect({ code: own.code, out: own.stdout.trim() }).toEqual({ code: 0, out: 'alice' });
    const r = await install(['--adopt-legacy-accounts']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`keymaker: adopted account alice (uid ${aliceUid}) for IAM user alice`);
    expect(r.stderr).not.toMatch(/adopted account bob/);
    expect(await sb.readFile(DEFAULT_PATHS.managedAccounts)).toMatch(new RegExp(`^alice:${aliceUid}:\\w{16,}$`, 'm'));
    expect((await syslogLines(sb)).some((l) => /adopt_accounts adopted account alice/.test(l))).toBe(true);
    const login = await sb.ssh('alice', { identityFile: pair.alice!.privateKeyPath, command: 'id -un' });
    expect({ code: login.code, out: login.stdout.trim() }).toEqual({ code: 0, out: 'alice' });
    // Adopted: in keymaker-users, so sshd no longer reads her authorized_keys (issue 12).
    expect((await sb.execOk(['getent', 'group', 'keymaker-users'])).stdout).toMatch(/:(.*,)?alice(,|$)/m);
    const planted = await sb.ssh('alice', { identityFile: pair.bob!.privateKeyPath, command: 'id -un', batch: true });
    expect(planted.code).toBe(255);
  });

  test('uninstall leaves the record and says so', async () => {
    const r = await sb.exec(['node', CLI, 'uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`left ${DEFAULT_PATHS.managedAccounts}`);
    expect(await sb.exists(DEFAULT_PATHS.managedAccounts)).toBe(true);
  });
});
