// `keymaker install --mode agent` on a real sshd with the real libnss-systemd, against moto: an IAM-only
// user with no /etc/passwd line logs in on her FIRST connection with publickey only, her home is made by
// pam_mkhomedir with her as owner, an unknown name is refused, and uninstall gives back nsswitch.conf and
// pam.d/sshd byte for byte and stops the agent.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSandbox, describeWithSandbox, type ExecResult, type Sandbox } from '../../../tools/sandbox/sandbox';
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

jest.setTimeout(180_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
// Files only, as Ubuntu and RHEL ship it: install must add systemd to passwd, group and shadow.
const NSSWITCH = `# agent-install.e2e.test.ts
passwd:         files
group:          files
shadow:         files
gshadow:        files
hosts:          files dns
`;

function keymaker(sb: Sandbox, args: string[]): Promise<ExecResult> {
  return sb.exec(['node', CLI, ...args], { timeoutMs: 90_000 });
}

describeWithSandbox('keymaker install --mode agent on a real sshd and libnss-systemd', () => {
  let sb: Sandbox;
  let tmp: string;
  let port: number;
  let endpoint: string;
  let alice: { privateKeyPath: string; publicKey: string };
  let pamBefore: Buffer;

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-agent-install-e2e.'));
    endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    const iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(
      iam,
      'keymaker-agent-host',
      'agent e2e host keymaker_require_iam_group=ssh-users',
    );
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    alice = makeSshKeyPair(tmp, 'alice');
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice']);

    sb = await createSandbox();
    await sb.writeFile('/etc/nsswitch.conf', NSSWITCH, 0o644);
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    pamBefore = fs.readFileSync(sb.hostPath('/etc/pam.d/sshd'));
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('install: systemd on the NSS lines, the agent running, the drop-in verified', async () => {
    const install = await keymaker(sb, [...installArgs(endpoint, port), '--mode', 'agent']);
    expect({ code: install.code, stderr: install.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('nothing will restart it'),
    });
    const nss = await sb.readFile('/etc/nsswitch.conf');
    for (const db of ['passwd', 'group', 'shadow']) expect(nss).toMatch(new RegExp(`^${db}:\\s+files systemd$`, 'm'));
    expect(await sb.readFile('/etc/pam.d/sshd')).toContain(
      'session optional pam_mkhomedir.so skel=/etc/skel umask=0077',
    );
    expect(await sb.readFile('/etc/pam.d/sshd')).not.toContain('pam_exec');
    const dropIn = await sb.readFile('/etc/ssh/sshd_config.d/50-keymaker.conf');
    expect(dropIn).toContain('AuthorizedKeysCommand /usr/local/sbin/keymaker-keys-client %u %f');
    expect(dropIn).not.toMatch(/KbdInteractiveAuthentication|AuthenticationMethods/);
    expect(dropIn.trimEnd().endsWith('Match Group keymaker-users\n    AuthorizedKeysFile none')).toBe(true);
    expect((await sb.execOk(['stat', '-c', '%U:%G %a', '/usr/local/sbin/keymaker-keys-client'])).stdout.trim()).toBe(
      'root:root 755',
    );
  });

  test('the detached agent runs as keymaker with CAP_KILL alone; root made its sockets as the units would', async () => {
    const pid = (await sb.readFile('/run/keymaker-agent.pid')).trim();
    const status = (await sb.execOk(['cat', `/proc/${pid}/status`])).stdout;
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim();
    const uid = (await sb.execOk(['id', '-u', 'keymaker'])).stdout.trim();
    const gid = (await sb.execOk(['id', '-g', 'keymaker'])).stdout.trim();
    expect(uid).toMatch(/^[1-9][0-9]*$/);
    expect({
      name: field('Name'),
      uid: field('Uid'),
      gid: field('Gid'),
      groups: field('Groups'),
      capEff: field('CapEff'),
      capBnd: field('CapBnd'),
      noNewPrivs: field('NoNewPrivs'),
    }).toEqual({
      name: 'node',
      uid: `${uid}\t${uid}\t${uid}\t${uid}`,
      gid: `${gid}\t${gid}\t${gid}\t${gid}`,
      groups: '',
      // CAP_KILL (bit 5), to end a revoked user's sessions; nothing else, ever.
      capEff: '0000000000000020',
      capBnd: '0000000000000020',
      noNewPrivs: '1',
    });
    const socket = async (p: string) => (await sb.execOk(['stat', '-c', '%F %U:%G %a', p])).stdout.trim();
    expect(await socket('/run/systemd/userdb/io.keymaker.agent')).toBe('socket root:root 666');
    expect(await socket('/run/keymaker/keys.sock')).toBe('socket root:keymaker 660');
  });

  test('an IAM-only user logs in on her first connection, publickey only; her home is hers', async () => {
    expect(fs.readFileSync(sb.hostPath('/etc/passwd'), 'utf8')).not.toMatch(/^alice:/m);
    const started = Date.now();
    const r = await sb.ssh('alice', {
      identityFile: alice.privateKeyPath,
      command: 'id -un; pwd; stat -c "%U %a" "$HOME"',
      batch: true,
    });
    const took = Date.now() - started;
    console.log(`agent mode: first login (ssh, BatchMode, publickey) in ${took} ms`);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout.trim().split('\n')).toEqual(['alice', '/home/alice', 'alice 700']);
    expect(await sb.readFile('/etc/passwd')).not.toMatch(/^alice:/m);
    expect(await passwdEntry(sb, 'alice')).toMatch(/^alice:x:\d+:\d+:/);
    // Her own authorized_keys is never read (issue 12): sshd -T for her says none, for root the usual files.
    const files = async (user: string) =>
      (await sb.execOk(['sshd', '-T', '-C', `user=${user},host=h,addr=127.0.0.1`])).stdout.match(
        /^authorizedkeysfile (.*)$/m,
      )?.[1];
    expect(await files('alice')).toBe('none');
    expect(await files('root')).not.toBe('none');
  });

  test('keymaker status: agent mode, the agent serving, NSS wired, the keys client in effect', async () => {
    const r = await keymaker(sb, ['status', '--json']);
    const report = JSON.parse(r.stdout) as { checks: { id: string; status: string; summary: string }[] };
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId.agent).toMatchObject({ status: 'ok', summary: expect.stringMatching(/^serving/) });
    expect(byId.nss).toMatchObject({ status: 'ok' });
    expect(byId.install).toMatchObject({ status: 'ok', summary: expect.stringContaining('agent mode') });
    expect(byId.sshd).toMatchObject({ status: 'ok' });
    expect({ code: r.code, problems: report.checks.filter((c) => c.status === 'problem') }).toEqual({
      code: 0,
      problems: [],
    });
  });

  test('an unknown name is refused', async () => {
    const r = await sb.ssh('nosuchiamuser', { identityFile: alice.privateKeyPath, command: 'id -un', batch: true });
    expect(r.code).toBe(255);
    expect(await passwdEntry(sb, 'nosuchiamuser')).toBeUndefined();
  });

  test('uninstall: nsswitch.conf and pam.d/sshd byte for byte, the agent stopped, IAM users gone', async () => {
    const pid = (await sb.readFile('/run/keymaker-agent.pid')).trim();
    const r = await keymaker(sb, ['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('stopped the keymaker agent'),
    });
    expect(fs.readFileSync(sb.hostPath('/etc/nsswitch.conf'), 'utf8')).toBe(NSSWITCH);
    expect(fs.readFileSync(sb.hostPath('/etc/pam.d/sshd')).equals(pamBefore)).toBe(true);
    expect(await sb.exists('/run/keymaker-agent.pid')).toBe(false);
    // The sockets root made for it, and the directories install made for them (the sandbox's /run was empty).
    for (const gone of [
      '/run/systemd/userdb/io.keymaker.agent',
      '/run/keymaker/keys.sock',
      '/run/keymaker',
      '/run/systemd',
    ])
      expect({ path: gone, exists: await sb.exists(gone) }).toEqual({ path: gone, exists: false });
    // No keymaker state left behind: the detached agent's log went with it.
    expect(await sb.exists('/var/lib/keymaker')).toBe(false);
    expect((await sb.exec(['kill', '-0', pid])).code).not.toBe(0);
    expect(await sb.exists('/etc/ssh/sshd_config.d/50-keymaker.conf')).toBe(false);
    expect(await passwdEntry(sb, 'alice')).toBeUndefined();
  });
});
