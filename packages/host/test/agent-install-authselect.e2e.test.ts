// `keymaker install` where authselect owns /etc/nsswitch.conf (RHEL-likes), with the real authselect (built from its
// source by tools/authselect/setup.sh, copied into the sandbox). A profile whose shadow line lacks systemd, as every
// authselect profile before 1.5.1 has it: install creates custom/keymaker from it with the same features, selects
// it (authselect check passes, nsswitch.conf is still authselect's symlink), an IAM user resolves through passwd and
// shadow; uninstall selects the previous profile again and /etc/authselect, /etc/nsswitch.conf and /etc/pam.d are
// back byte for byte. A profile that lists systemd already (authselect >= 1.5.1's local) is left untouched.
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
import {
  credentialsFileText,
  installArgs,
  passwdEntry,
  randomAccountId,
  REPO_ROOT,
  resolvesThroughAgent,
} from './e2e-host';

jest.setTimeout(180_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const AUTHSELECT_ROOT = path.join(REPO_ROOT, '.toolchain/authselect/root');
const FEATURES = 'with-mkhomedir with-faillock';

function unavailable(): string | undefined {
  if (fs.existsSync(path.join(AUTHSELECT_ROOT, 'usr/local/bin/authselect'))) return undefined;
  const reason = path.join(REPO_ROOT, '.toolchain/authselect/UNAVAILABLE');
  return fs.existsSync(reason)
    ? `authselect unavailable: ${fs.readFileSync(reason, 'utf8').trim()}`
    : 'authselect not built (run tools/authselect/setup.sh)';
}
const skip = process.getuid?.() === 0 ? unavailable() : undefined;
const describeHere = skip
  ? (name: string, body: () => void) => describe.skip(`${name} (skipped: ${skip})`, body)
  : describeWithSandbox;

function keymaker(sb: Sandbox, args: string[]): Promise<ExecResult> {
  return sb.exec(['node', CLI, ...args], { timeoutMs: 90_000 });
}

/** Every file and symlink authselect owns or generates, with its bytes or target: the byte-for-byte evidence. */
async function authselectTree(sb: Sandbox, o: { withSshdPam: boolean }): Promise<string> {
  const skip = o.withSshdPam ? '' : '-not -path /etc/pam.d/sshd';
  const script = `find /etc/authselect /etc/nsswitch.conf /etc/pam.d ${skip} \\( -type f -o -type l \\) -printf '%y %p %l\\n' | sort |
    while read -r type file target; do
      if [ "$type" = f ]; then echo "$file $(sha256sum < "$file" | cut -c1-64)"; else echo "$file -> $target"; fi
    done`;
  return (await sb.execOk(['bash', '-c', script])).stdout;
}

describeHere('keymaker install where authselect owns nsswitch.conf (real authselect)', () => {
  let sb: Sandbox;
  let tmp: string;
  let port: number;
  let endpoint: string;
  let creds: string;

  /** authselect installed in the sandbox, the profile PROFILE selected with FEATURES. */
  async function authselectHost(profile: string): Promise<Sandbox> {
    const box = await createSandbox();
    await box.execOk(['cp', '-a', `${AUTHSELECT_ROOT}/.`, '/']);
    await box.execOk(['ldconfig']);
    if (profile === 'rhel9') {
      // A vendor profile as older authselect ships them: systemd on passwd and group, shadow files only.
      await box.execOk(['authselect', 'create-profile', 'rhel9', '--vendor', '--base-on', 'local']);
      await box.execOk([
        'sed',
        '-i',
        's/^shadow:.*/shadow:     files/',
        '/usr/local/share/authselect/vendor/rhel9/nsswitch.conf',
      ]);
    }
    await box.execOk(['authselect', 'select', profile, ...FEATURES.split(' '), '--force', '--nobackup']);
    await box.writeFile('/root/aws-credentials', creds, 0o600);
    return box;
  }

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-authselect-e2e.'));
    endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    const iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-rhel-host', 'keymaker_require_iam_group=ssh-users');
    creds = credentialsFileText(await instanceRoleCredentials(stsClient(endpoint, admin), role.arn));
    const alice = makeSshKeyPair(tmp, 'alice');
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice']);
    sb = await authselectHost('rhel9');
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  let before: string;
  test('install: custom/keymaker with the same features, authselect check passes, an IAM user resolves', async () => {
    expect((await sb.execOk(['authselect', 'current', '--raw'])).stdout.trim()).toBe(`rhel9 ${FEATURES}`);
    before = await authselectTree(sb, { withSshdPam: true });
    const install = await keymaker(sb, [...installArgs(endpoint, port), '--mode', 'auto']);
    expect({ code: install.code, stderr: install.code === 0 ? '' : install.stderr }).toEqual({ code: 0, stderr: '' });
    expect(install.stderr).toContain(
      `selected the authselect profile custom/keymaker (rhel9 with systemd on shadow; features ${FEATURES})`,
    );
    expect((await sb.execOk(['authselect', 'current', '--raw'])).stdout.trim()).toBe(`custom/keymaker ${FEATURES}`);
    expect((await sb.exec(['authselect', 'check'])).code).toBe(0);
    expect((await sb.execOk(['readlink', '/etc/nsswitch.conf'])).stdout.trim()).toBe('/etc/authselect/nsswitch.conf');
    const nss = await sb.readFile('/etc/nsswitch.conf');
    for (const db of ['passwd', 'group', 'shadow']) expect(nss).toMatch(new RegExp(`^${db}:.*\\bsystemd\\b`, 'm'));
    expect(await sb.readFile('/etc/passwd')).not.toMatch(/^alice:/m);
    expect(await resolvesThroughAgent(sb, 'passwd', 'alice')).toMatch(/^alice:x:\d+:\d+:/);
    expect(await resolvesThroughAgent(sb, 'shadow', 'alice')).toMatch(/^alice:/);
  });

  test('uninstall: the previous profile and features again; /etc/authselect, nsswitch.conf, pam.d byte for byte', async () => {
    const r = await keymaker(sb, ['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stderr).toContain('selected the authselect profile rhel9 again; removed custom/keymaker');
    expect((await sb.execOk(['authselect', 'current', '--raw'])).stdout.trim()).toBe(`rhel9 ${FEATURES}`);
    expect((await sb.exec(['authselect', 'check'])).code).toBe(0);
    expect(await authselectTree(sb, { withSshdPam: true })).toBe(before);
    expect(await passwdEntry(sb, 'alice')).toBeUndefined();
  });

  test('a profile that lists systemd already (authselect >= 1.5.1): install and uninstall leave authselect alone', async () => {
    await sb.destroy(); // done with it: one sandbox at a time on a small machine
    const modern = await authselectHost('local');
    try {
      const { port: p } = await modern.startSshd();
      // pam.d/sshd gets agent mode's session line: not authselect's file.
      const tree = await authselectTree(modern, { withSshdPam: false });
      const install = await keymaker(modern, [...installArgs(endpoint, p), '--mode', 'auto']);
      expect({ code: install.code, stderr: install.code === 0 ? '' : install.stderr }).toEqual({
        code: 0,
        stderr: '',
      });
      expect(install.stderr).toContain('agent mode (libnss-systemd can serve IAM users here)');
      expect(await resolvesThroughAgent(modern, 'passwd', 'alice')).toMatch(/^alice:x:/);
      expect(await authselectTree(modern, { withSshdPam: false })).toBe(tree);
      const r = await keymaker(modern, ['uninstall', '--sshd-pid-file', `/run/sshd-${p}.pid`]);
      expect(r.code).toBe(0);
      expect(await authselectTree(modern, { withSshdPam: false })).toBe(tree);
    } finally {
      await modern.destroy();
    }
  });
});
