// Proof that tools/sandbox runs a real sshd + ssh without touching the host.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createSandbox, describeWithSandbox, type Sandbox } from '../../../tools/sandbox/sandbox';

function keygen(dir: string, name: string): { key: string; pub: string } {
  const key = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key]);
  fs.chmodSync(key, 0o600);
  return { key, pub: fs.readFileSync(`${key}.pub`, 'utf8').trim() };
}

/** Install a user, a root-owned AuthorizedKeysCommand that prints `pub`, and a drop-in config. */
async function setUpLogin(sb: Sandbox, user: string, pub: string): Promise<void> {
  await sb.execOk(['useradd', '--create-home', '--shell', '/bin/bash', user]);
  await sb.writeFile('/usr/local/sbin/test-keys', `#!/bin/sh\n[ "$1" = "${user}" ] && echo '${pub}'\nexit 0\n`, 0o755);
  await sb.writeFile(
    '/etc/ssh/sshd_config.d/test.conf',
    'AuthorizedKeysCommand /usr/local/sbin/test-keys %u\nAuthorizedKeysCommandUser nobody\n',
  );
}

describeWithSandbox('tools/sandbox: real sshd in a namespace sandbox', () => {
  let tmp: string;
  let good: { key: string; pub: string };
  let bad: { key: string; pub: string };
  const sandboxes: Sandbox[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sandbox-e2e-keys.'));
    good = keygen(tmp, 'good');
    bad = keygen(tmp, 'bad');
  });

  afterAll(async () => {
    // Runs even when a test failed; destroy() is idempotent.
    await Promise.all(sandboxes.map((s) => s.destroy()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function newSandbox(): Promise<Sandbox> {
    const sb = await createSandbox();
    sandboxes.push(sb);
    return sb;
  }

  test('useradd + AuthorizedKeysCommand + sshd: right key logs in, wrong key is refused, host untouched', async () => {
    const user = 'sbx-alice';
    const sb = await newSandbox();
    await setUpLogin(sb, user, good.pub);
    expect((await sb.execOk(['id', '-un', user])).stdout.trim()).toBe(user);
    expect((await sb.execOk(['stat', '-c', '%U %a', '/usr/local/sbin/test-keys'])).stdout.trim()).toBe('root 755');

    const { port } = await sb.startSshd();
    expect(sb.sshdLog()).toContain(`Server listening on 127.0.0.1 port ${port}`);

    const ok = await sb.ssh(user, { identityFile: good.key, command: 'id -un' });
    expect({ code: ok.code, out: ok.stdout.trim(), err: ok.stderr }).toEqual({ code: 0, out: user, err: '' });
    expect(sb.sshdLog()).toContain(`Accepted publickey for ${user}`);

    // the ssh client inside the sandbox works too (same network, /tmp is shared)
    const inside = await sb.ssh(user, { identityFile: good.key, command: ['echo', 'hi'], inside: true });
    expect(inside.stdout.trim()).toBe('hi');

    const refused = await sb.ssh(user, { identityFile: bad.key, command: 'id -un' });
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('Permission denied');

    // reload keeps serving
    await sb.reloadSshd();
    expect((await sb.ssh(user, { identityFile: good.key })).code).toBe(0);

    const changes = await sb.upperDirChanges();
    const files = changes.filter((c) => c.type === 'file').map((c) => c.path);
    expect(files).toEqual(
      expect.arrayContaining([
        '/etc/passwd',
        '/etc/shadow',
        '/etc/ssh/sshd_config.d/test.conf',
        '/usr/local/sbin/test-keys',
      ]),
    );
    expect(changes.map((c) => c.path)).toContain(`/home/${user}`);

    // the host is untouched
    expect(fs.readFileSync('/etc/passwd', 'utf8')).not.toMatch(new RegExp(`^${user}:`, 'm'));
    expect(fs.existsSync('/etc/ssh/sshd_config.d/test.conf')).toBe(false);
    expect(fs.existsSync('/usr/local/sbin/test-keys')).toBe(false);
    expect(fs.existsSync(`/home/${user}`)).toBe(false);

    await sb.destroy();
    await sb.destroy(); // twice is fine
    expect(fs.existsSync(`/proc/${sb.pid}`)).toBe(false);
    const after = await sb.ssh(user, { identityFile: good.key, port, command: 'true' });
    expect(after.code).toBe(255); // sshd died with the sandbox
  });

  test('two sandboxes run sshd at once, each with its own users', async () => {
    const [a, b] = await Promise.all([newSandbox(), newSandbox()]);
    await Promise.all([setUpLogin(a, 'sbx-ann', good.pub), setUpLogin(b, 'sbx-bob', bad.pub)]);
    const [pa, pb] = await Promise.all([a.startSshd(), b.startSshd()]);
    expect(pa.port).not.toBe(pb.port);

    expect((await a.ssh('sbx-ann', { identityFile: good.key, command: 'id -un' })).stdout.trim()).toBe('sbx-ann');
    expect((await b.ssh('sbx-bob', { identityFile: bad.key, command: 'id -un' })).stdout.trim()).toBe('sbx-bob');
    // users and keys do not leak between sandboxes
    expect((await a.ssh('sbx-bob', { identityFile: bad.key })).code).toBe(255);
    expect((await b.ssh('sbx-ann', { identityFile: good.key })).code).toBe(255);
    expect(a.sshdLog()).toContain('Invalid user sbx-bob');
  });
});
