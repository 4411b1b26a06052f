// keymaker sync_groups on a real host (sandbox): groups, members, pre-provisioning, refusal of
// system groups, a throttled IAM call mid-sync, and the lock. Run through the installed wrapper
// with an empty environment, as cron runs it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AddUserToGroupCommand, RemoveUserFromGroupCommand, type IAMClient } from '@aws-sdk/client-iam';
import { EXIT_CODES } from '@keymaker/core';
import { createFaultProxy } from '../../../tools/faults/fault-proxy.cjs';
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
import type { SyncReport } from '../src/accounts/group-sync';
import {
  buildHostBundle,
  hostConfigFor,
  installByHand,
  randomAccountId,
  startFailingProxy,
  syslogLines,
} from './e2e-host';

jest.setTimeout(120_000);

describeWithSandbox('sync_groups on a real host', () => {
  let sb: Sandbox;
  let bundle: string;
  let keys: string;
  let iam: IAMClient;
  let proxy: Awaited<ReturnType<typeof startFailingProxy>>;
  let bobKey: { privateKeyPath: string; publicKey: string };

  const sync = (...args: string[]) => sb.exec([DEFAULT_PATHS.syncGroupsCommand, ...args], { timeoutMs: 90_000 });
  const members = async (group: string) => {
    const r = await sb.exec(['getent', 'group', group]);
    return r.code === 0 ? r.stdout.trim().split(':')[3]!.split(',').filter(Boolean) : undefined;
  };

  beforeAll(async () => {
    const endpoint = motoEndpoint();
    proxy = await startFailingProxy(endpoint);
    keys = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-sync-e2e.'));
    bobKey = makeSshKeyPair(keys, 'bob');
    const aliceKey = makeSshKeyPair(keys, 'alice');
    bundle = await buildHostBundle();

    const account = randomAccountId();
    const admin = await credentialsForAccount(stsClient(endpoint), account);
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-instance', 'keymaker_uid_scheme=wide');
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    await createUserWithKeys(iam, 'alice', [{ body: aliceKey.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'bob', [{ body: bobKey.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'nokey', []);
    await createGroupWithMembers(iam, 'keymaker_devs', ['alice']);
    await createGroupWithMembers(iam, 'keymaker_ops', ['bob']);
    await createGroupWithMembers(iam, 'keymaker_sudo', ['alice', 'bob']);

    sb = await createSandbox();
    await installByHand(sb, bundle, hostConfigFor(proxy.url, { preProvisionAccounts: true }), instance);
    await sb.startSshd();
  });

  afterAll(async () => {
    await sb?.destroy();
    await proxy?.close();
    if (keys) fs.rmSync(keys, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('creates groups and pre-provisions accounts; refuses the existing sudo group; first login works in one connection', async () => {
    const sudoBefore = await members('sudo');
    const r = await sync();
    expect(r.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
    expect(r.stderr).toMatch(/created group devs \(gid \d+\)/);
    expect(r.stderr).toMatch(/created account alice \(uid \d+\)/);
    expect(r.stderr).toMatch(/refused group sudo: existing group sudo \(gid 27\) was not created by keymaker/);
    expect(await members('devs')).toEqual(['alice']);
    expect(await members('ops')).toEqual(['bob']);
    expect(await members('sudo')).toEqual(sudoBefore);
    // No key, no account.
    expect((await sb.exec(['getent', 'passwd', 'nokey'])).code).toBe(2);

    const login = await sb.ssh('bob', { identityFile: bobKey.privateKeyPath, command: 'id -Gn', batch: true });
    expect(login.code).toBe(0);
    expect(login.stdout.trim().split(' ')).toEqual(expect.arrayContaining(['bob', 'ops']));
    expect((await syslogLines(sb)).some((l) => /keymaker\[\d+\]: sync_groups: created group devs/.test(l))).toBe(true);
  });

  test('adds and removes managed members to match IAM, keeping members added by hand', async () => {
    await sb.execOk(['gpasswd', '--add', 'nobody', 'devs']);
    await iam.send(new AddUserToGroupCommand({ GroupName: 'keymaker_devs', UserName: 'bob' }));
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'keymaker_devs', UserName: 'alice' }));
    const r = await sync();
    expect(r.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED); // sudo is still refused
    expect(r.stderr).toContain('group devs: +bob -alice');
    expect((await members('devs'))!.sort()).toEqual(['bob', 'nobody']);
  });

  test('--dry-run --json reports the plan and changes nothing', async () => {
    await iam.send(new AddUserToGroupCommand({ GroupName: 'keymaker_devs', UserName: 'alice' }));
    const r = await sync('--dry-run', '--json');
    const report = JSON.parse(r.stdout) as SyncReport;
    expect(report).toMatchObject({
      dryRun: true,
      changes: ['group devs: +alice'],
      refused: [expect.objectContaining({ group: 'sudo' })],
    });
    expect((await members('devs'))!.sort()).toEqual(['bob', 'nobody']);
  });

  test('a throttled read of one group leaves that group as it is; the other groups are synced; exit SYNC_PARTIAL', async () => {
    proxy.failWhen(/^(?=.*Action=GetGroup&)(?=.*GroupName=keymaker_ops)/);
    try {
      const r = await sync();
      expect(r.code).toBe(EXIT_CODES.SYNC_PARTIAL);
      expect(r.stderr).toMatch(/FAILED reading IAM group keymaker_ops: .*group ops left as it is/);
      expect(r.stderr).toContain('group devs: +alice');
      expect((await members('devs'))!.sort()).toEqual(['alice', 'bob', 'nobody']);
      expect(await members('ops')).toEqual(['bob']);
    } finally {
      proxy.failWhen(undefined);
    }
    const again = await sync();
    expect(again.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
    expect((await members('devs'))!.sort()).toEqual(['alice', 'bob', 'nobody']);
  });

  test('a throttled read of every group and of the allowed users changes nothing', async () => {
    proxy.failWhen(/Action=(ListGroups|ListUsers)&/);
    try {
      await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'keymaker_devs', UserName: 'alice' }));
      const r = await sync();
      expect(r.code).toBe(EXIT_CODES.THROTTLED);
      expect(r.stderr).toContain('nothing was changed');
      expect((await members('devs'))!.sort()).toEqual(['alice', 'bob', 'nobody']);
    } finally {
      proxy.failWhen(undefined);
      await iam.send(new AddUserToGroupCommand({ GroupName: 'keymaker_devs', UserName: 'alice' }));
    }
  });

  test('a second run while one holds the lock exits with LOCKED and changes nothing; the holder killed, the next run proceeds', async () => {
    // A holder in the sandbox: a shell that takes the kernel lock and then becomes `sleep`.
    await sb.execOk([
      'bash',
      '-c',
      `(exec 9>>${DEFAULT_PATHS.syncLock}; flock 9; echo $BASHPID > /run/lock-holder.pid; exec sleep 60) </dev/null >/dev/null 2>&1 &`,
    ]);
    for (let i = 0; i < 100 && !(await sb.exists('/run/lock-holder.pid')); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const r = await sync();
    expect(r.code).toBe(EXIT_CODES.LOCKED);
    expect(r.stderr).toMatch(/another keymaker run holds/);
    await sb.execOk(['bash', '-c', 'kill -9 "$(cat /run/lock-holder.pid)"; rm -f /run/lock-holder.pid']);
    expect((await sync()).code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
  });

  test('a lock file naming a live process (a killed sync whose pid was reused) does not block the next sync', async () => {
    // PID 1 of the sandbox always runs: a pid-file lock took this as held, forever.
    await sb.writeFile(DEFAULT_PATHS.syncLock, '1\n', 0o600);
    expect((await sync()).code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
  });

  test('an IAM request that never answers: the sync stops at its deadline with a clear error, releases the lock, and the next sync works', async () => {
    const hanging = await createFaultProxy({ target: motoEndpoint() }).start();
    const configFile = '/etc/keymaker/config-hang.json';
    const deadlineMs = 6000;
    try {
      const current = JSON.parse((await sb.exec(['cat', DEFAULT_PATHS.configFile])).stdout) as Record<string, unknown>;
      await sb.writeFile(
        configFile,
        JSON.stringify({ ...current, iamEndpoint: hanging.url, stsEndpoint: hanging.url }),
        0o644,
      );
      await hanging.setFault({ kind: 'hang', action: 'GetGroup' });
      const started = Date.now();
      const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand, '--config', configFile], {
        env: { KEYMAKER_DEADLINE_MS: String(deadlineMs) },
        timeoutMs: 60_000,
      });
      const ms = Date.now() - started;
      expect(r.code).toBe(EXIT_CODES.DEADLINE_EXCEEDED);
      expect(r.stderr).toMatch(/did not finish within 6 s/);
      // Deadline, the wait for its work to end, and process start-up: nowhere near "forever".
      expect(ms).toBeLessThan(deadlineMs + 5000);
      // The lock is free: a run right after takes it.
      await hanging.setFault({ kind: 'none' });
      const again = await sb.exec([DEFAULT_PATHS.syncGroupsCommand, '--config', configFile], {
        env: { KEYMAKER_DEADLINE_MS: String(deadlineMs) },
        timeoutMs: 60_000,
      });
      expect(again.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
      expect(again.stderr).not.toMatch(/another keymaker run holds/);
    } finally {
      await sb.exec(['rm', '-f', configFile]);
      await hanging.stop();
    }
  });

  test('one stalled request is retried within the deadline and the sync completes', async () => {
    const hanging = await createFaultProxy({ target: motoEndpoint() }).start();
    const configFile = '/etc/keymaker/config-hang.json';
    try {
      const current = JSON.parse((await sb.exec(['cat', DEFAULT_PATHS.configFile])).stdout) as Record<string, unknown>;
      await sb.writeFile(
        configFile,
        JSON.stringify({ ...current, iamEndpoint: hanging.url, stsEndpoint: hanging.url }),
        0o644,
      );
      await hanging.setFault({ kind: 'hang', action: 'GetGroup', nth: 1, times: 1 });
      const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand, '--config', configFile], {
        env: { KEYMAKER_DEADLINE_MS: '20000' },
        timeoutMs: 60_000,
      });
      expect(r.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
      expect(hanging.stats().counts.GetGroup).toBeGreaterThan(1);
    } finally {
      await sb.exec(['rm', '-f', configFile]);
      await hanging.stop();
    }
  });

  test('a second run is a no-op apart from the refused group', async () => {
    const r = await sync();
    expect(r.stderr).toContain('no changes');
    expect(r.code).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
  });
});
