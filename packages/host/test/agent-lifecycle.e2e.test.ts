// Agent mode over time, on a real sshd with the real libnss-systemd, against moto behind tools/faults' proxy
// (which counts every IAM request and can make IAM hang): a key an IAM user plants in her own authorized_keys is
// never read; removed from the required group, her open session ends within a refresh and she cannot log in, and
// she is back (same UID, home and files kept) when re-added; a user deleted from IAM stops resolving; IAM hanging
// never stalls NSS; 1,000 random names cost a bounded number of IAM requests; with the agent killed, IAM-only users
// are refused cleanly and local users are unaffected.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AddUserToGroupCommand,
  DeleteGroupCommand,
  DeleteUserCommand,
  RemoveUserFromGroupCommand,
} from '@aws-sdk/client-iam';
import { createSandbox, describeWithSandbox, type ExecResult, type Sandbox } from '../../../tools/sandbox/sandbox';
import { createFaultProxy, type FaultProxy } from '../../../tools/faults/fault-proxy.cjs';
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
import { credentialsFileText, installArgs, passwdEntry, randomAccountId, REPO_ROOT } from './e2e-host';

jest.setTimeout(240_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const REFRESH_SECONDS = 2;
const NSSWITCH = 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n';

type KeyPair = { privateKeyPath: string; publicKey: string };

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describeWithSandbox('agent mode over time: revocation, IAM hanging, floods, the agent gone', () => {
  let sb: Sandbox;
  let tmp: string;
  let proxy: FaultProxy;
  let iam: ReturnType<typeof iamClient>;
  let alice: KeyPair;
  let bob: KeyPair;
  let planted: KeyPair;
  let local: KeyPair;
  let aliceUid: string;

  const login = (user: string, key: KeyPair, command = 'id -un') =>
    sb.ssh(user, { identityFile: key.privateKeyPath, command, batch: true, timeoutMs: 60_000 });
  const keymaker = (args: string[]): Promise<ExecResult> => sb.exec(['node', CLI, ...args], { timeoutMs: 90_000 });

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx nx run-many -t build)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-agent-lifecycle-e2e.'));
    const endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(
      iam,
      'keymaker-lifecycle',
      'keymaker_require_iam_group=ssh-users keymaker_linux_group_prefix=lx-',
    );
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    [alice, bob, planted, local] = ['alice', 'bob', 'planted', 'local'].map((n) => makeSshKeyPair(tmp, n)) as [
      KeyPair,
      KeyPair,
      KeyPair,
      KeyPair,
    ];
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'bob', [{ body: bob.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice', 'bob']);
    await createGroupWithMembers(iam, 'lx-devs', ['alice']);
    proxy = await createFaultProxy({ target: endpoint }).start();

    sb = await createSandbox();
    await sb.writeFile('/etc/nsswitch.conf', NSSWITCH, 0o644);
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    // A local user with her own authorized_keys: agent mode must leave her alone.
    await sb.execOk(['useradd', '-m', '-s', '/bin/sh', 'localuser']);
    await sb.execOk(['install', '-d', '-m', '700', '-o', 'localuser', '-g', 'localuser', '/home/localuser/.ssh']);
    await sb.writeFile('/home/localuser/.ssh/authorized_keys', local.publicKey, 0o600, 'localuser:localuser');
    const { port } = await sb.startSshd();
    const args = installArgs(endpoint, port).map((a) => (a === endpoint ? proxy.url : a));
    const install = await keymaker([...args, '--mode', 'agent', '--agent-refresh-seconds', String(REFRESH_SECONDS)]);
    expect({ code: install.code, stderr: install.code === 0 ? '' : install.stderr }).toEqual({ code: 0, stderr: '' });
  });

  afterAll(async () => {
    await sb?.destroy();
    await proxy?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a key she plants in ~/.ssh/authorized_keys is never read; a local user keeps hers', async () => {
    const first = await login(
      'alice',
      alice,
      `mkdir -p ~/.ssh && echo '${planted.publicKey}' >> ~/.ssh/authorized_keys && id -u`,
    );
    expect({ code: first.code, stderr: first.code === 0 ? '' : first.stderr }).toEqual({ code: 0, stderr: '' });
    aliceUid = first.stdout.trim();
    expect(await sb.readFile('/home/alice/.ssh/authorized_keys')).toContain(planted.publicKey.split(' ')[1]);
    expect((await login('alice', planted)).code).toBe(255);
    expect(await login('localuser', local)).toMatchObject({ code: 0, stdout: 'localuser\n' });
  });

  test('out of the required group: her open session ends within a refresh, no login; back when re-added', async () => {
    // The agent that ends her session is not root: keymaker, with CAP_KILL only.
    const agentPid = (await sb.readFile('/run/keymaker-agent.pid')).trim();
    const status = (await sb.execOk(['cat', `/proc/${agentPid}/status`])).stdout;
    const keymakerUid = (await sb.execOk(['id', '-u', 'keymaker'])).stdout.trim();
    expect(/^Uid:\s+(\d+)\s/m.exec(status)?.[1]).toBe(keymakerUid);
    expect(keymakerUid).not.toBe('0');
    expect(/^CapEff:\s+(\S+)$/m.exec(status)?.[1]).toBe('0000000000000020');
    await sb.execOk(['rm', '-f', '/home/alice/session-started']);
    const session = login('alice', alice, 'touch ~/session-started; echo kept > ~/notes; sleep 180; echo survived');
    await until(
      'her session started',
      async () => ((await sb.exists('/home/alice/session-started')) ? true : undefined),
      30_000,
    );
    const changed = Date.now();
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'ssh-users', UserName: 'alice' }));
    const ended = await session;
    const endedAfter = Date.now() - changed;
    console.log(`agent mode: session ended ${endedAfter} ms after the IAM change (refresh every ${REFRESH_SECONDS} s)`);
    expect(ended.stdout).not.toContain('survived');
    // Bounded by the refresh interval (plus a loaded machine's slack), never by her sleep.
    expect(endedAfter).toBeLessThan(REFRESH_SECONDS * 1000 + 30_000);
    expect(await passwdEntry(sb, 'alice')).toBeUndefined();
    expect((await login('alice', alice)).code).toBe(255);
    expect((await sb.exec(['pgrep', '-u', aliceUid])).code).toBe(1);
    // Her files stay, with her UID.
    expect((await sb.execOk(['stat', '-c', '%u', '/home/alice/notes'])).stdout.trim()).toBe(aliceUid);
    const log = await sb.readFile('/var/lib/keymaker/agent.log').catch(() => '');
    if (log) expect(log).toMatch(/revoked alice \(IAM user alice, uid \d+\): not-in-required-group/);

    const readded = Date.now();
    await iam.send(new AddUserToGroupCommand({ GroupName: 'ssh-users', UserName: 'alice' }));
    // A name refused a moment ago is cached as refused for up to a minute (the negative cache).
    const back = await until(
      'alice back',
      async () => {
        const r = await login('alice', alice, 'id -u; cat ~/notes');
        return r.code === 0 ? r : undefined;
      },
      90_000,
    );
    console.log(`agent mode: re-added user logs in again ${Date.now() - readded} ms after the IAM change`);
    expect(back.stdout).toBe(`${aliceUid}\nkept\n`);
  });

  test('deleted from IAM: stops resolving within a refresh and gets no keys', async () => {
    expect(await login('bob', bob)).toMatchObject({ code: 0, stdout: 'bob\n' });
    const changed = Date.now();
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'ssh-users', UserName: 'bob' }));
    const { DeleteSSHPublicKeyCommand, ListSSHPublicKeysCommand } = await import('@aws-sdk/client-iam');
    for (const key of (await iam.send(new ListSSHPublicKeysCommand({ UserName: 'bob' }))).SSHPublicKeys ?? [])
      await iam.send(new DeleteSSHPublicKeyCommand({ UserName: 'bob', SSHPublicKeyId: key.SSHPublicKeyId }));
    await iam.send(new DeleteUserCommand({ UserName: 'bob' }));
    await until(
      'bob gone from NSS',
      async () => ((await passwdEntry(sb, 'bob')) === undefined ? true : undefined),
      60_000,
    );
    console.log(`agent mode: deleted user stopped resolving ${Date.now() - changed} ms after the IAM change`);
    expect((await login('bob', bob)).code).toBe(255);
  });

  test('a deleted IAM group: its Linux group is gone from her groups within a refresh; re-created, it is back', async () => {
    const groups = async () => (await sb.execOk(['id', '-Gn', 'alice'])).stdout.trim().split(' ');
    expect(await groups()).toContain('devs');
    expect((await sb.exec(['getent', 'group', 'devs'])).stdout).toMatch(/^devs:x:\d+:alice$/m);
    const changed = Date.now();
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'lx-devs', UserName: 'alice' }));
    await iam.send(new DeleteGroupCommand({ GroupName: 'lx-devs' }));
    await until('devs gone', async () => ((await groups()).includes('devs') ? undefined : true), 60_000);
    console.log(`agent mode: deleted IAM group left her groups ${Date.now() - changed} ms after the IAM change`);
    expect((await sb.exec(['getent', 'group', 'devs'])).code).toBe(2);
    // She herself is unaffected.
    expect(await login('alice', alice)).toMatchObject({ code: 0, stdout: 'alice\n' });
    await createGroupWithMembers(iam, 'lx-devs', ['alice']);
    await until('devs back', async () => ((await groups()).includes('devs') ? true : undefined), 60_000);
  });

  test('IAM hanging: every NSS call is still answered within the deadline, from cache or "not found"', async () => {
    await proxy.setFault({ kind: 'hang' });
    try {
      for (const argv of [
        ['getent', 'passwd', 'alice'],
        ['getent', 'passwd', 'neverseen'],
        ['getent', 'group', 'neverseen'],
        ['id', 'alice'],
        ['ls', '-ln', '/home'],
      ]) {
        const started = Date.now();
        const r = await sb.exec(argv, { timeoutMs: 30_000 });
        const ms = Date.now() - started;
        console.log(`IAM hanging: ${argv.join(' ')} exit ${r.code} in ${ms} ms`);
        // libnss-systemd would wait 45 s for an agent that does not answer; the agent answers within ~1 s.
        expect(ms).toBeLessThan(15_000);
        if (argv[2] === 'alice' || argv[0] === 'id') expect(r.code).toBe(0);
        if (argv[2] === 'neverseen') expect(r.code).toBe(2);
      }
    } finally {
      await proxy.setFault({ kind: 'none' });
    }
  });

  test('1,000 random names through NSS cost a bounded number of IAM requests', async () => {
    proxy.resetStats();
    const started = Date.now();
    const r = await sb.exec(
      [
        'sh',
        '-c',
        'i=0; while [ $i -lt 1000 ]; do getent passwd "rnd$i$RANDOM" >/dev/null; i=$((i+1)); done; echo done',
      ],
      { timeoutMs: 180_000 },
    );
    const seconds = (Date.now() - started) / 1000;
    expect(r.stdout.trim()).toBe('done');
    const { total, counts } = proxy.stats();
    // Meanwhile alice's background refresh runs every 2 s: GetUser + ListSSHPublicKeys + ListGroupsForUser each.
    const refreshes = counts.ListGroupsForUser ?? 0;
    const forRandomNames = (counts.GetUser ?? 0) - refreshes;
    console.log(
      `1,000 random names in ${seconds.toFixed(1)} s: ${forRandomNames} IAM requests for them (${total} in all, ${refreshes} refreshes of alice) ${JSON.stringify(counts)}`,
    );
    // The flood guard (iam-identity-source.ts): a burst of 20 resolutions, then 12 a minute, one GetUser each.
    expect(forRandomNames).toBeLessThanOrEqual(20 + Math.ceil((seconds * 12) / 60) + 1);
    expect(await passwdEntry(sb, 'alice')).toMatch(/^alice:/);
  });

  test('the agent killed: IAM-only users are refused cleanly, local users are unaffected', async () => {
    const pid = (await sb.readFile('/run/keymaker-agent.pid')).trim();
    await sb.execOk(['kill', '-KILL', pid]);
    await until('agent gone', async () => ((await sb.exec(['kill', '-0', pid])).code !== 0 ? true : undefined), 10_000);
    const started = Date.now();
    const refused = await login('alice', alice);
    console.log(`agent killed: IAM-only login refused in ${Date.now() - started} ms`);
    expect(refused.code).toBe(255);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await passwdEntry(sb, 'alice')).toBeUndefined();
    expect(await login('localuser', local)).toMatchObject({ code: 0, stdout: 'localuser\n' });
    expect(await passwdEntry(sb, 'root')).toMatch(/^root:/);
  });
});
