// `keymaker install` / `uninstall` against a real sshd in a namespace sandbox: the built CLI
// (packages/cli/dist, built by `npm test` before e2e) run as root inside the sandbox.
import { expect } from '@jest/globals';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSandbox, describeWithSandbox, type ExecResult, type Sandbox } from '../../../tools/sandbox/sandbox';
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
import type { InstallResult } from '../src/install/apply';
import { credentialsFileText, installArgs } from './e2e-host';

jest.setTimeout(120_000);

const REPO_ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const KEYMAKER_PATHS = [
  '/etc/keymaker',
  '/etc/ssh/sshd_config.d/50-keymaker.conf',
  '/etc/cron.d/keymaker-sync-groups',
  '/usr/local/lib/keymaker',
  '/usr/local/sbin/keymaker-authorized-keys',
  '/usr/local/sbin/keymaker-create-account',
  '/usr/local/sbin/keymaker-sync-groups',
  '/var/lib/keymaker',
];

function keymaker(sb: Sandbox, args: string[]): Promise<ExecResult> {
  return sb.exec(['node', CLI, ...args]);
}

/** Every path under the overlaid dirs, with a hash of each file's bytes, mode and owner. */
async function fingerprint(sb: Sandbox): Promise<string[]> {
  const out: string[] = [];
  for (const change of await sb.upperDirChanges()) {
    if (change.type !== 'file') {
      out.push(`${change.type} ${change.path}`);
      continue;
    }
    const st = (await sb.execOk(['stat', '-c', '%a %U:%G', change.path])).stdout.trim();
    const bytes = fs.readFileSync(sb.hostPath(change.path));
    out.push(`${change.path} ${st} ${crypto.createHash('sha256').update(bytes).digest('hex')}`);
  }
  return out;
}

function listeningCount(sb: Sandbox): number {
  return sb.sshdLog().split('Server listening on 127.0.0.1').length - 1;
}

/** After a SIGHUP reload, sshd re-executes and listens again. */
async function waitForReload(sb: Sandbox, before: number): Promise<void> {
  for (let i = 0; i < 200 && listeningCount(sb) <= before; i++) await new Promise((r) => setTimeout(r, 25));
  expect(listeningCount(sb)).toBeGreaterThan(before);
}

async function effective(sb: Sandbox, keyword: string): Promise<string> {
  const out = (await sb.execOk(['sshd', '-T'])).stdout;
  return (
    out
      .split('\n')
      .find((line) => line.startsWith(`${keyword} `))
      ?.slice(keyword.length + 1) ?? ''
  );
}

const hostFile = (p: string) => fs.readFileSync(p);

describeWithSandbox('keymaker install / uninstall on a real sshd', () => {
  const sandboxes: Sandbox[] = [];
  let tmp: string;

  beforeAll(() => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-install-e2e.'));
  });
  afterAll(async () => {
    await Promise.all(sandboxes.map((s) => s.destroy()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  async function newSandbox(): Promise<Sandbox> {
    const sb = await createSandbox();
    sandboxes.push(sb);
    return sb;
  }

  test('install, first connection creates the account, second logs in; uninstall stops IAM logins and restores every file', async () => {
    // An IAM user with a key in a moto account of our own, and instance-role credentials for the host.
    const endpoint = motoEndpoint();
    const account = String(100000000000 + Math.floor(Math.random() * 899999999999));
    const admin = await credentialsForAccount(stsClient(endpoint), account);
    const iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-host', 'install e2e host');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const alice = makeSshKeyPair(tmp, 'alice');
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);

    const sb = await newSandbox();
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    const { port } = await sb.startSshd();
    let before = listeningCount(sb);
    const install = await keymaker(sb, [...installArgs(endpoint, port)]);
    expect({ code: install.code, stderr: install.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('reloaded sshd (SIGHUP'),
    });
    await waitForReload(sb, before);

    // The lookup user: locked, no login shell, no home.
    expect((await sb.execOk(['getent', 'passwd', 'keymaker'])).stdout).toMatch(
      /^keymaker:x:\d+:\d+:Keymaker SSH key lookup:\/nonexistent:\/usr\/sbin\/nologin$/m,
    );
    expect((await sb.execOk(['passwd', '-S', 'keymaker'])).stdout).toMatch(/^keymaker L /);
    expect((await sb.execOk(['stat', '-c', '%U:%G %a', '/etc/keymaker/credentials'])).stdout.trim()).toBe(
      'root:keymaker 640',
    );
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('/usr/local/sbin/keymaker-authorized-keys %u %f');
    // The wrappers run the loader; install made the bundle's code cache with the wrappers' Node, and
    // the lookup user's process uses it (issue 14): the logins below go through it.
    const wrapper = (await sb.execOk(['cat', '/usr/local/sbin/keymaker-authorized-keys'])).stdout;
    const [, nodeBin] =
      /^exec (\S+) \/usr\/local\/lib\/keymaker\/keymaker-host-loader\.cjs get_authorized_keys "\$@"$/m.exec(wrapper) ??
      [];
    expect(nodeBin).toBeDefined();
    const cacheFile = '/usr/local/lib/keymaker/keymaker-host.cjs.cache';
    expect((await sb.execOk(['stat', '-c', '%U:%G %a', cacheFile])).stdout.trim()).toBe('root:root 644');
    const cacheStatus = `console.log(require(${JSON.stringify(path.join(REPO_ROOT, 'packages/host/dist/index.cjs'))}).loadBundle('/usr/local/lib/keymaker/keymaker-host.cjs', { cachePath: ${JSON.stringify(cacheFile)} }).cache)`;
    const asLookupUser = [
      'setpriv',
      '--reuid',
      'keymaker',
      '--regid',
      'keymaker',
      '--clear-groups',
      nodeBin!,
      '-e',
      cacheStatus,
    ];
    expect((await sb.execOk(asLookupUser)).stdout.trim()).toBe('used');

    const first = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' });
    expect(first.code).toBe(255);
    expect((await sb.exec(['getent', 'passwd', 'alice'])).code).toBe(0);
    const second = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' });
    expect({ code: second.code, out: second.stdout.trim() }).toEqual({ code: 0, out: 'alice' });

    before = listeningCount(sb);
    const uninstall = await keymaker(sb, ['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect(uninstall.code).toBe(0);
    await waitForReload(sb, before);

    // The account stays (it is somebody's), but IAM no longer lets anybody in.
    const after = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un', batch: true });
    expect(after.code).toBe(255);
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('none');
    for (const p of ['/etc/ssh/sshd_config', '/etc/pam.d/sshd'])
      expect((await sb.exec(['cat', p])).stdout).toBe(hostFile(p).toString());
    // The record of managed accounts stays with the accounts (issue 13, point 4), and with it /etc/keymaker.
    for (const p of KEYMAKER_PATHS.filter((k) => k !== '/etc/keymaker'))
      expect({ p, exists: await sb.exists(p) }).toEqual({ p, exists: false });
    expect((await sb.execOk(['ls', '-A', '/etc/keymaker'])).stdout.trim()).toBe('managed-accounts');
    expect((await sb.exec(['getent', 'passwd', 'keymaker'])).code).toBe(2);
    expect((await sb.exec(['getent', 'group', 'keymaker'])).code).toBe(2);

    // Idempotent: a second uninstall has nothing to do.
    const again = await keymaker(sb, ['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect({ code: again.code, stderr: again.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('nothing to uninstall'),
    });
  });

  test('install twice leaves exactly what one install leaves; uninstall then leaves the original bytes', async () => {
    const sb = await newSandbox();
    const args = ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none'];
    expect((await keymaker(sb, args)).code).toBe(0);
    const once = await fingerprint(sb);
    const second = await keymaker(sb, [...args, '--json']);
    expect(second.code).toBe(0);
    expect((JSON.parse(second.stdout) as InstallResult).changed).toEqual([]);
    expect(await fingerprint(sb)).toEqual(once);

    expect((await keymaker(sb, ['uninstall', '--reload', 'none'])).code).toBe(0);
    for (const p of [
      '/etc/ssh/sshd_config',
      '/etc/pam.d/sshd',
      '/etc/passwd',
      '/etc/group',
      '/etc/shadow',
      '/etc/gshadow',
    ]) {
      expect({ p, same: fs.readFileSync(sb.hostPath(p)).equals(hostFile(p)) }).toEqual({ p, same: true });
    }
  });

  test('refuses a Node binary below a world-writable directory and changes nothing', async () => {
    const sb = await newSandbox();
    const dir = fs.mkdtempSync(path.join(tmp, 'node-'));
    fs.copyFileSync(fs.realpathSync(process.execPath), path.join(dir, 'node'));
    fs.chmodSync(path.join(dir, 'node'), 0o755);
    // Through a symlink in a safe place: the check follows it to the real path.
    await sb.execOk(['ln', '-s', path.join(dir, 'node'), '/usr/local/bin/node-elsewhere']);
    const before = await fingerprint(sb);
    const r = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--reload',
      'none',
      '--node',
      '/usr/local/bin/node-elsewhere',
    ]);
    expect(r.code).toBe(41);
    expect(r.stderr).toContain(
      `refusing to install: ${os.tmpdir()}, a parent directory of the Node binary ${path.join(dir, 'node')}`,
    );
    expect(r.stderr).toContain('is world-writable, and sshd refuses to run commands below it');
    expect(r.stderr).toContain('under a root-owned directory such as /usr/local');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await fingerprint(sb)).toEqual(before);
  });

  test('refuses a Node binary in a group-writable directory, naming it and the chmod fix', async () => {
    const sb = await newSandbox();
    await sb.execOk([
      'bash',
      '-c',
      'mkdir -p /opt/node/bin && cp "$(readlink -f "$(command -v node)")" /opt/node/bin/node && chmod 775 /opt/node',
    ]);
    const before = await fingerprint(sb);
    const r = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--reload',
      'none',
      '--node',
      '/opt/node/bin/node',
    ]);
    expect(r.code).toBe(41);
    expect(r.stderr).toContain(
      '/opt/node, a parent directory of the Node binary /opt/node/bin/node, is group-writable',
    );
    expect(r.stderr).toContain('chmod go-w /opt/node');
    expect(await fingerprint(sb)).toEqual(before);
  });

  test('refuses when the sshd config fails sshd -t, leaving the old config live', async () => {
    const sb = await newSandbox();
    await sb.execOk(['useradd', '--create-home', 'bob']);
    const bob = makeSshKeyPair(tmp, 'bob');
    await sb.writeFile('/home/bob/.ssh/authorized_keys', `${bob.publicKey}\n`, 0o600, 'bob:bob');
    await sb.startSshd();
    // Somebody broke the config on disk; the running sshd still has the good one.
    await sb.writeFile('/etc/ssh/sshd_config.d/10-typo.conf', 'PasswordAuthentcation no\n');
    const before = await fingerprint(sb);
    const listening = listeningCount(sb);
    const r = await keymaker(sb, ['install', '--mode', 'compat', '--region', 'us-east-1']);
    expect(r.code).toBe(42);
    expect(r.stderr).toMatch(
      /^keymaker: refusing to install: sshd rejects the configuration on disk .*10-typo\.conf: line 1: Bad configuration option: PasswordAuthentcation; fix it first \(check with sshd -t\)\n$/,
    );
    expect(await fingerprint(sb)).toEqual(before);
    expect(listeningCount(sb)).toBe(listening);
    const login = await sb.ssh('bob', { identityFile: bob.privateKeyPath, command: 'id -un', batch: true });
    expect(login.stdout.trim()).toBe('bob');
  });

  test("refuses when an earlier drop-in would override keymaker's settings (candidate checked with sshd -T first)", async () => {
    const sb = await newSandbox();
    await sb.writeFile('/etc/ssh/sshd_config.d/10-site.conf', 'KbdInteractiveAuthentication no\n');
    const before = await fingerprint(sb);
    const r = await keymaker(sb, ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none']);
    expect(r.code).toBe(42);
    expect(r.stderr).toContain('sshd would still use kbdinteractiveauthentication is "no", not "yes"');
    expect(await fingerprint(sb)).toEqual(before);
  });

  test('an existing AuthorizedKeysCommand (EC2 Instance Connect) is refused unless --force; uninstall gives it back', async () => {
    const sb = await newSandbox();
    const eic =
      'AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f\nAuthorizedKeysCommandUser nobody\n';
    await sb.writeFile('/etc/ssh/sshd_config.d/60-ec2-instance-connect.conf', eic);
    const before = await fingerprint(sb);
    const refused = await keymaker(sb, ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none']);
    expect(refused.code).toBe(46);
    expect(refused.stderr).toContain(
      'sshd already runs an AuthorizedKeysCommand (/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f)',
    );
    expect(refused.stderr).toContain('--force');
    expect(await fingerprint(sb)).toEqual(before);

    const forced = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--reload',
      'none',
      '--force',
    ]);
    expect(forced.code).toBe(0);
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('/usr/local/sbin/keymaker-authorized-keys %u %f');
    expect((await keymaker(sb, ['uninstall', '--reload', 'none'])).code).toBe(0);
    expect(await effective(sb, 'authorizedkeyscommand')).toBe(
      '/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f',
    );
  });

  test('without an Include, the block goes before every other directive and wins over a later "KbdInteractiveAuthentication no"', async () => {
    const sb = await newSandbox();
    const main =
      '# site config\nPort 22\nKbdInteractiveAuthentication no\nUsePAM yes\nSubsystem sftp /usr/lib/openssh/sftp-server\nMatch User nobody\n  X11Forwarding no\n';
    await sb.writeFile('/etc/ssh/sshd_config', main);
    const r = await keymaker(sb, ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none']);
    expect(r.code).toBe(0);
    expect(await sb.exists('/etc/ssh/sshd_config.d/50-keymaker.conf')).toBe(false);
    const installed = await sb.readFile('/etc/ssh/sshd_config');
    expect(installed.indexOf('# BEGIN keymaker')).toBeLessThan(installed.indexOf('Port 22'));
    expect(await effective(sb, 'kbdinteractiveauthentication')).toBe('yes');
    expect(await effective(sb, 'authenticationmethods')).toBe('publickey keyboard-interactive:pam,publickey');
    expect((await keymaker(sb, ['uninstall', '--reload', 'none'])).code).toBe(0);
    expect(await sb.readFile('/etc/ssh/sshd_config')).toBe(main);
  });

  test("install, admin adds an MFA line to pam.d/sshd and a directive to sshd_config, install again, uninstall: both edits stay, keymaker's lines go", async () => {
    const sb = await newSandbox();
    // No Include, so keymaker's settings go in a block in sshd_config itself.
    const main =
      '# site config\nPort 22\nKbdInteractiveAuthentication no\nUsePAM yes\nSubsystem sftp /usr/lib/openssh/sftp-server\nMatch User nobody\n  X11Forwarding no\n';
    await sb.writeFile('/etc/ssh/sshd_config', main);
    const pam = hostFile('/etc/pam.d/sshd').toString();
    const args = ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none'];
    expect((await keymaker(sb, args)).code).toBe(0);

    const MFA = 'auth required pam_google_authenticator.so nullok';
    const editedPam = `# site: MFA for everybody\n${await sb.readFile('/etc/pam.d/sshd')}${MFA}\n`;
    await sb.writeFile('/etc/pam.d/sshd', editedPam);
    const installedMain = await sb.readFile('/etc/ssh/sshd_config');
    await sb.writeFile(
      '/etc/ssh/sshd_config',
      `ClientAliveInterval 120\n${installedMain.replace('Match User nobody', 'MaxAuthTries 4\nMatch User nobody')}`,
    );
    expect((await sb.exec(['sshd', '-t'])).code).toBe(0);

    const again = await keymaker(sb, args);
    expect({ code: again.code, stderr: again.stderr }).toEqual({
      code: 0,
      stderr: expect.not.stringContaining('warning'),
    });
    const uninstall = await keymaker(sb, ['uninstall', '--reload', 'none']);
    expect({ code: uninstall.code, stderr: uninstall.stderr }).toEqual({
      code: 0,
      stderr: expect.not.stringContaining('warning'),
    });

    expect(await sb.readFile('/etc/pam.d/sshd')).toBe(`# site: MFA for everybody\n${pam}${MFA}\n`);
    expect(await sb.readFile('/etc/ssh/sshd_config')).toBe(
      `ClientAliveInterval 120\n${main.replace('Match User nobody', 'MaxAuthTries 4\nMatch User nobody')}`,
    );
    expect((await sb.exec(['sshd', '-t'])).code).toBe(0);
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('none');
    expect(await effective(sb, 'clientaliveinterval')).toBe('120');
  });

  test('a symlinked /etc/pam.d/sshd and /etc/ssh/sshd_config stay symlinks through install and uninstall; their targets get back their bytes', async () => {
    const sb = await newSandbox();
    const main = '# site config\nPort 22\nUsePAM yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n';
    await sb.writeFile('/etc/site/sshd_config', main);
    await sb.writeFile('/etc/site/pam-sshd', hostFile('/etc/pam.d/sshd'));
    await sb.execOk([
      'bash',
      '-c',
      'rm /etc/ssh/sshd_config /etc/pam.d/sshd && ln -s /etc/site/sshd_config /etc/ssh/sshd_config && ln -s ../site/pam-sshd /etc/pam.d/sshd',
    ]);
    const links = async () =>
      (
        await sb.execOk([
          'bash',
          '-c',
          'readlink /etc/ssh/sshd_config /etc/pam.d/sshd; stat -c "%F %a %U:%G" /etc/site/sshd_config /etc/site/pam-sshd',
        ])
      ).stdout;
    const before = await links();

    const install = await keymaker(sb, ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none']);
    expect({ code: install.code, stderr: install.stderr }).toEqual({
      code: 0,
      stderr: expect.not.stringContaining('warning'),
    });
    expect(await links()).toBe(before);
    expect(await sb.readFile('/etc/site/sshd_config')).toContain('# BEGIN keymaker');
    expect(await sb.readFile('/etc/site/pam-sshd')).toContain('/usr/local/sbin/keymaker-create-account');
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('/usr/local/sbin/keymaker-authorized-keys %u %f');
    const strays = (await sb.exec(['bash', '-c', 'ls -A /etc/site /etc/ssh /etc/pam.d | grep -i keymaker'])).stdout;
    expect(strays).toBe('');

    expect((await keymaker(sb, ['uninstall', '--reload', 'none'])).code).toBe(0);
    expect(await links()).toBe(before);
    expect(await sb.readFile('/etc/site/sshd_config')).toBe(main);
    expect(fs.readFileSync(sb.hostPath('/etc/site/pam-sshd')).equals(hostFile('/etc/pam.d/sshd'))).toBe(true);
    expect((await sb.exec(['sshd', '-t'])).code).toBe(0);
  });

  test('a failed reload restores every file byte for byte and says what failed', async () => {
    const sb = await newSandbox();
    const before = await fingerprint(sb);
    const r = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--reload',
      'pidfile',
      '--sshd-pid-file',
      '/run/no-such-sshd.pid',
    ]);
    expect(r.code).toBe(43);
    expect(r.stderr).toContain(
      'install failed while reloading sshd: no running sshd with the pid in /run/no-such-sshd.pid; every file was restored as it was',
    );
    for (const p of KEYMAKER_PATHS) expect({ p, exists: await sb.exists(p) }).toEqual({ p, exists: false });
    for (const p of [
      '/etc/ssh/sshd_config',
      '/etc/pam.d/sshd',
      '/etc/passwd',
      '/etc/group',
      '/etc/shadow',
      '/etc/gshadow',
    ]) {
      expect({ p, same: fs.readFileSync(sb.hostPath(p)).equals(hostFile(p)) }).toEqual({ p, same: true });
    }
    expect(before).toEqual([]);
  });

  // Issue 13, point 2: install never weakens authentication.
  async function userWithKey(sb: Sandbox, name: string) {
    await sb.execOk(['useradd', '--create-home', name]);
    const key = makeSshKeyPair(tmp, `${name}-${crypto.randomBytes(3).toString('hex')}`);
    await sb.writeFile(`/home/${name}/.ssh/authorized_keys`, `${key.publicKey}\n`, 0o600, `${name}:${name}`);
    return key;
  }

  test('AuthenticationMethods publickey,password after the Include: install keeps it (hook step in front), sshd_config unchanged, a key alone still does not log in', async () => {
    const sb = await newSandbox();
    const main = `${hostFile('/etc/ssh/sshd_config').toString()}PasswordAuthentication yes\nAuthenticationMethods publickey,password\n`;
    await sb.writeFile('/etc/ssh/sshd_config', main);
    const bob = await userWithKey(sb, 'bob');
    const { port } = await sb.startSshd({ logLevel: 'VERBOSE' }); // VERBOSE logs "Partial publickey"
    const keyOnly = () => sb.ssh('bob', { identityFile: bob.privateKeyPath, command: 'id -un', batch: true });
    expect((await keyOnly()).code).toBe(255);

    const before = listeningCount(sb);
    const r = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--sshd-pid-file',
      `/run/sshd-${port}.pid`,
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining("kept sshd's AuthenticationMethods"),
    });
    await waitForReload(sb, before);
    expect(await effective(sb, 'authenticationmethods')).toBe(
      'publickey,password keyboard-interactive:pam,publickey,password',
    );
    expect(await effective(sb, 'authorizedkeyscommand')).toBe('/usr/local/sbin/keymaker-authorized-keys %u %f');
    expect(await sb.readFile('/etc/ssh/sshd_config')).toBe(main);

    const login = await keyOnly();
    expect({ code: login.code, out: login.stdout }).toEqual({ code: 255, out: '' });
    // The key was accepted and sshd still wanted the password: it is the policy that stopped the login.
    expect(sb.sshdLog()).toMatch(/Partial publickey for bob from 127\.0\.0\.1/);
  });

  test('a Match User admin block with stricter methods is respected; one that keymaker would loosen is refused (exit 49), nothing changed', async () => {
    const sb = await newSandbox();
    await sb.writeFile(
      '/etc/ssh/sshd_config',
      `${hostFile('/etc/ssh/sshd_config').toString()}Match User admin\n  AuthenticationMethods publickey,password\n`,
    );
    const admin = await userWithKey(sb, 'admin');
    const { port } = await sb.startSshd({ logLevel: 'VERBOSE' });
    const before = listeningCount(sb);
    const r = await keymaker(sb, [
      'install',
      '--mode',
      'compat',
      '--region',
      'us-east-1',
      '--sshd-pid-file',
      `/run/sshd-${port}.pid`,
    ]);
    expect(r.code).toBe(0);
    await waitForReload(sb, before);
    const forAdmin = (await sb.execOk(['sshd', '-T', '-C', 'user=admin,host=client.example.net,addr=203.0.113.10']))
      .stdout;
    expect(forAdmin).toContain('\nauthenticationmethods publickey,password\n');
    const login = await sb.ssh('admin', { identityFile: admin.privateKeyPath, command: 'id -un', batch: true });
    expect(login.code).toBe(255);
    expect(sb.sshdLog()).toMatch(/Partial publickey for admin from 127\.0\.0\.1/);

    // keyboard-interactive is off, so admin's second list is dormant; keymaker turns it on and admin
    // would log in with PAM (a password) alone: refused.
    const sb2 = await newSandbox();
    await sb2.writeFile(
      '/etc/ssh/sshd_config',
      `${hostFile('/etc/ssh/sshd_config').toString()}Match User admin\n  AuthenticationMethods publickey,password keyboard-interactive\n`,
    );
    const untouched = await fingerprint(sb2);
    const refused = await keymaker(sb2, ['install', '--mode', 'compat', '--region', 'us-east-1', '--reload', 'none']);
    expect(refused.code).toBe(49);
    expect(refused.stderr).toMatch(
      /^keymaker: refusing to install: keymaker's sshd settings would weaken authentication for user admin, so nothing was changed: a login with keyboard-interactive would be accepted where sshd required publickey,password; fix: .*KbdInteractiveAuthentication no in that Match block\n$/,
    );
    expect(await fingerprint(sb2)).toEqual(untouched);
  });
});
