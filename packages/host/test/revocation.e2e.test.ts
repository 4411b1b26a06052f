// Issue 12, compat mode, on a real sshd: revocation that revokes. Installed with the real `keymaker
// install` (its drop-in, PAM line and wrappers), accounts made at first login, sync_groups run through
// the installed wrapper as the schedule runs it. A key planted in ~/.ssh/authorized_keys never logs a
// keymaker account in; an offboarded user's open session ends and her account is locked (home kept)
// at the next sync, and is unlocked when she is back; a deleted IAM group's Linux group is emptied;
// members gpasswd cannot handle are left alone while the rest applies.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AddUserToGroupCommand,
  DeleteGroupCommand,
  DeleteSSHPublicKeyCommand,
  DeleteUserCommand,
  ListSSHPublicKeysCommand,
  RemoveUserFromGroupCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
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
  credentialsFileText,
  installArgs,
  randomAccountId,
  startSyslogListener,
  SYSLOG_SOCKET,
  syslogLines,
} from './e2e-host';

jest.setTimeout(180_000);

const REPO_ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
type Pair = { privateKeyPath: string; publicKey: string };

describeWithSandbox('revocation that revokes (compat mode, real sshd)', () => {
  let sb: Sandbox;
  let iam: IAMClient;
  let tmp: string;
  let port: number;
  const key: Record<string, Pair> = {};
  const syncTimes: number[] = [];

  const sync = async () => {
    const started = Date.now();
    const r = await sb.exec([DEFAULT_PATHS.syncGroupsCommand], { timeoutMs: 90_000 });
    syncTimes.push(Date.now() - started);
    return r;
  };
  const members = async (group: string) => {
    const r = await sb.exec(['getent', 'group', group]);
    return r.code === 0 ? r.stdout.trim().split(':')[3]!.split(',').filter(Boolean) : undefined;
  };
  const login = (user: string, pair: Pair, command = 'id -un') =>
    sb.ssh(user, { identityFile: pair.privateKeyPath, command, batch: true });
  const uidOf = async (user: string) => Number((await sb.execOk(['id', '-u', user])).stdout.trim());
  const expiry = async (user: string) => (await sb.execOk(['getent', 'shadow', user])).stdout.trim().split(':')[7];
  const record = async () => (await sb.execOk(['cat', DEFAULT_PATHS.managedAccounts])).stdout;
  const authorizedKeysFile = async (user: string) =>
    (await sb.execOk(['sshd', '-T', '-C', `user=${user},host=client.example.net,addr=127.0.0.1`])).stdout
      .split('\n')
      .find((l) => l.startsWith('authorizedkeysfile '))
      ?.slice('authorizedkeysfile '.length);

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx nx run-many -t build)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-revocation-e2e.'));
    for (const name of ['alice', 'bob', 'planted', 'local']) key[name] = makeSshKeyPair(tmp, name);
    const endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-host', 'keymaker_require_iam_group=ssh-users');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    await createUserWithKeys(iam, 'alice', [{ body: key.alice!.publicKey, status: 'Active' }]);
    await createUserWithKeys(iam, 'bob', [{ body: key.bob!.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice', 'bob']);
    await createGroupWithMembers(iam, 'keymaker_devs', ['alice', 'bob']);
    await createGroupWithMembers(iam, 'keymaker_ops', ['bob']);

    sb = await createSandbox();
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    // A local account with her own authorized_keys: keymaker must not change how she logs in.
    await sb.execOk(['useradd', '--create-home', '--shell', '/bin/bash', 'carol']);
    await sb.writeFile('/home/carol/.ssh/authorized_keys', `${key.local!.publicKey}\n`, 0o600, 'carol:carol');
    await sb.execOk(['chown', 'carol:carol', '/home/carol/.ssh']);
    await sb.execOk(['chmod', '700', '/home/carol/.ssh']);
    port = (await sb.startSshd()).port;
    const install = await sb.exec(['node', CLI, ...installArgs(endpoint, port)]);
    if (install.code !== 0) throw new Error(`keymaker install failed (${install.code}): ${install.stderr}`);
    await sb.reloadSshd();
    // Decisions to a syslog listener the test reads.
    const config = JSON.parse(await sb.readFile(DEFAULT_PATHS.configFile)) as Record<string, unknown>;
    await sb.writeFile(DEFAULT_PATHS.configFile, `${JSON.stringify({ ...config, syslogSocket: SYSLOG_SOCKET })}\n`);
    await startSyslogListener(sb);

    // First connections create the accounts (compat mode's JIT account), the sync fills the groups.
    for (const name of ['alice', 'bob']) {
      await sb.ssh(name, { identityFile: key[name]!.privateKeyPath, command: 'true' });
      expect(await sb.exists(`/home/${name}`)).toBe(true);
    }
    expect((await sync()).code).toBe(0);
  });

  afterAll(async () => {
    await sb?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('keymaker accounts are in keymaker-users; sshd reads no authorized_keys file for them, and a local user keeps hers', async () => {
    expect((await members('keymaker-users'))!.sort()).toEqual(['alice', 'bob']);
    expect(await members('devs')).toEqual(expect.arrayContaining(['alice', 'bob']));
    expect(await authorizedKeysFile('alice')).toBe('none');
    expect(await authorizedKeysFile('carol')).toBe('.ssh/authorized_keys .ssh/authorized_keys2');
    expect(await authorizedKeysFile('root')).toBe('.ssh/authorized_keys .ssh/authorized_keys2');
    expect((await login('carol', key.local!)).stdout.trim()).toBe('carol');
    // A re-install runs the same check with a keymaker account present (sshd -T -C user=alice).
    const again = await sb.exec(['node', CLI, ...installArgs(motoEndpoint(), port)]);
    expect(again.code).toBe(0);
  });

  test('a key alice plants in ~/.ssh/authorized_keys does not log her in, even while she is allowed', async () => {
    const plant = await login(
      'alice',
      key.alice!,
      `mkdir -p ~/.ssh && chmod 700 ~/.ssh && echo '${key.planted!.publicKey}' >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys && echo planted`,
    );
    expect(plant.stdout.trim()).toBe('planted');
    expect((await login('alice', key.planted!)).code).toBe(255);
    expect((await login('alice', key.alice!)).stdout.trim()).toBe('alice');
  });

  test('offboarded (out of the required group): her open session ends, the account is locked with its home kept, su refuses it', async () => {
    const uid = await uidOf('alice');
    // An open session that would otherwise outlive the revocation.
    const session = sb.ssh('alice', {
      identityFile: key.alice!.privateKeyPath,
      command: 'sleep 600',
      batch: true,
      timeoutMs: 150_000,
    });
    let running = false;
    for (let i = 0; i < 100 && !running; i++) {
      running = (await sb.exec(['pgrep', '-U', String(uid), '-x', 'sleep'])).code === 0;
      if (!running) await new Promise((r) => setTimeout(r, 100));
    }
    expect(running).toBe(true);

    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'ssh-users', UserName: 'alice' }));
    const changed = Date.now();
    const r = await sync();
    const syncMs = Date.now() - changed;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/locked account alice \(uid \d+, IAM user alice\); sessions ended; home kept/);
    // Her session is gone (the client sees the connection close), and no process of hers is left.
    const ended = await session;
    expect(ended.code).not.toBe(0);
    expect((await sb.exec(['pgrep', '-U', String(uid)])).code).toBe(1);
    // Locked (expired on day 1), out of devs, still in keymaker-users, home and files kept, record marked.
    expect(await expiry('alice')).toBe('1');
    expect(await members('devs')).not.toContain('alice');
    expect(await members('keymaker-users')).toContain('alice');
    expect(await sb.exists('/home/alice/.ssh/authorized_keys')).toBe(true);
    expect(await record()).toMatch(new RegExp(`^alice:${uid}:[A-Za-z0-9]+:locked$`, 'm'));
    // PAM's account stage refuses her everywhere (cron asks the same stage): su, and both keys.
    const su = await sb.exec(['su', '-s', '/bin/sh', 'alice', '-c', 'true']);
    expect(su.code).not.toBe(0);
    expect(su.stderr).toMatch(/expired/);
    expect((await login('alice', key.alice!)).code).toBe(255);
    expect((await login('alice', key.planted!)).code).toBe(255);
    const log = await syslogLines(sb);
    expect(
      log.some((l) =>
        new RegExp(
          `sync_groups: revoke lock user=alice uid=${uid} iam_user=alice reason=".*required group ssh-users`,
        ).test(l),
      ),
    ).toBe(true);
    expect(log.some((l) => new RegExp(`revoke group=devs user=alice uid=${uid} iam_user=alice`).test(l))).toBe(true);
    // How long after the IAM change: the next scheduled sync, which itself took this long.
    console.log(`revocation: sync_groups applied the lock ${syncMs} ms after the IAM change (one run)`);
  });

  test('back in the required group (same IAM unique ID): unlocked, groups back, the IAM key logs in; the planted key still does not', async () => {
    await iam.send(new AddUserToGroupCommand({ GroupName: 'ssh-users', UserName: 'alice' }));
    const r = await sync();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/unlocked account alice/);
    expect(await expiry('alice')).toBe('');
    expect(await members('devs')).toContain('alice');
    expect(await record()).not.toMatch(/^alice:.*:locked$/m);
    expect((await login('alice', key.alice!)).stdout.trim()).toBe('alice');
    expect((await login('alice', key.planted!)).code).toBe(255);
    expect(
      (await syslogLines(sb)).some((l) => /sync_groups: grant unlock user=alice uid=\d+ iam_user=alice/.test(l)),
    ).toBe(true);
  });

  test('an IAM user deleted: locked with that reason; a deleted IAM group is emptied and a re-created one fills it again', async () => {
    const bobUid = await uidOf('bob');
    for (const group of ['ssh-users', 'keymaker_devs', 'keymaker_ops'])
      await iam.send(new RemoveUserFromGroupCommand({ GroupName: group, UserName: 'bob' }));
    const keys = await iam.send(new ListSSHPublicKeysCommand({ UserName: 'bob' }));
    for (const k of keys.SSHPublicKeys ?? [])
      await iam.send(new DeleteSSHPublicKeyCommand({ UserName: 'bob', SSHPublicKeyId: k.SSHPublicKeyId }));
    await iam.send(new DeleteUserCommand({ UserName: 'bob' }));
    await iam.send(new AddUserToGroupCommand({ GroupName: 'keymaker_ops', UserName: 'alice' }));
    const r = await sync();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/locked account bob \(uid \d+, IAM user bob\)/);
    expect(await expiry('bob')).toBe('1');
    expect(
      (await syslogLines(sb)).some((l) =>
        new RegExp(
          `revoke lock user=bob uid=${bobUid} iam_user=bob reason=".*gone or no longer in the required group`,
        ).test(l),
      ),
    ).toBe(true);
    expect(await members('ops')).toEqual(['alice']);

    // The IAM group deleted: at the next sync its Linux group loses every keymaker member.
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'keymaker_ops', UserName: 'alice' }));
    await iam.send(new DeleteGroupCommand({ GroupName: 'keymaker_ops' }));
    expect((await sync()).code).toBe(0);
    // The Linux group stays (files keep their group name), emptied.
    expect(await members('ops')).toEqual([]);
    expect(
      (await syslogLines(sb)).some((l) => /revoke group=ops user=alice .*IAM group keymaker_ops is gone/.test(l)),
    ).toBe(true);

    // Re-created under the same name (a new ID, so another derived GID): the old group fills again.
    await createGroupWithMembers(iam, 'keymaker_ops', ['alice']);
    const again = await sync();
    expect(again.code).toBe(0);
    expect(await members('ops')).toEqual(['alice']);
  });

  test('members gpasswd cannot handle are reported and left alone; every other change in that group and others applies', async () => {
    // A stale name (no account) and one outside NAME_REGEX, put in /etc/group and gshadow by hand.
    for (const file of ['/etc/group', '/etc/gshadow']) {
      const text = await sb.readFile(file);
      await sb.writeFile(
        file,
        text.replace(
          /^(devs:[^:]*:[^:]*:)(.*)$/m,
          (_m, head: string, list: string) => `${head}ghost,Odd.Name${list ? `,${list}` : ''}`,
        ),
        file === '/etc/gshadow' ? 0o640 : 0o644,
        file === '/etc/gshadow' ? 'root:shadow' : 'root:root',
      );
    }
    expect(await members('devs')).toEqual(['ghost', 'Odd.Name', 'alice']);
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'keymaker_devs', UserName: 'alice' }));
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'keymaker_ops', UserName: 'alice' }));
    const r = await sync();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/skipped ghost in devs: no local account/);
    expect(r.stderr).toMatch(/group devs: -alice/);
    expect(r.stderr).toMatch(/group ops: -alice/);
    expect(await members('devs')).toEqual(['ghost', 'Odd.Name']);
    expect(await members('ops')).toEqual([]);
    console.log(
      `revocation: sync_groups runs took ${syncTimes.join(', ')} ms; schedule: ${(await sb.readFile(DEFAULT_PATHS.cronFile)).split('\n').find((l) => /^\S+ \S+ \S+ \S+ \S+ root /.test(l))}`,
    );
  });
});
