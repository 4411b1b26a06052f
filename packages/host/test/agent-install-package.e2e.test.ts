// `keymaker install` on a Debian host WITHOUT libnss-systemd: agent mode by default, the package installed for
// real with apt-get from Debian's mirror (at the installed systemd's version, nothing else upgraded), nsswitch
// edited by keymaker alone (the package's postinst edit put back first), an IAM user resolved through getent;
// uninstall gives nsswitch.conf back byte for byte and leaves the package installed, saying so. The sandbox
// overlays /usr too (overlayUsr), so removing and installing the package never reaches this machine, which the
// last test checks.
import { expect } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
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

jest.setTimeout(400_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const NSSWITCH = `# agent-install-package.e2e.test.ts
passwd:         files
group:          files
shadow:         files
gshadow:        files
hosts:          files dns
`;

const text = (argv: string[]) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? 1, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() };
};

/** This machine's libnss-systemd: its dpkg status, the library and its hash (the last test compares them). */
function machinePackage(): { status: string; library: string; sha256: string } | undefined {
  const status = text(['dpkg-query', '-W', '-f', '${db:Status-Abbrev} ${Version}', 'libnss-systemd']);
  const library = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']
    .map((d) => path.join(d, 'libnss_systemd.so.2'))
    .find((p) => fs.existsSync(p));
  if (status.code !== 0 || !status.out.startsWith('ii') || !library) return undefined;
  return {
    status: status.out,
    library,
    sha256: crypto.createHash('sha256').update(fs.readFileSync(library)).digest('hex'),
  };
}

/** Why this test cannot run here, or undefined: a Debian machine with the package, and its mirror reachable. */
function unavailable(): string | undefined {
  if (!fs.existsSync('/etc/debian_version') || !fs.existsSync('/usr/bin/apt-get')) return 'not a Debian host';
  if (!machinePackage()) return 'libnss-systemd is not installed on this machine (tools/sandbox/install-deps.sh)';
  const version = text(['dpkg-query', '-W', '-f', '${Version}', 'systemd']).out;
  // The very file install's apt-get will fetch: the mirror is reachable when a HEAD of it answers.
  const uris = text(['apt-get', 'download', '--print-uris', `libnss-systemd=${version}`]);
  const url = /^'([^']+)'/.exec(uris.out)?.[1];
  if (!url) return `apt-get has no libnss-systemd=${version} (run apt-get update): ${uris.err || uris.out}`;
  const head = text(['curl', '-sfI', '-o', '/dev/null', '--max-time', '10', url]);
  return head.code === 0 ? undefined : `Debian's mirror is unreachable (curl -I ${url}: exit ${head.code})`;
}

const skip = process.getuid?.() === 0 ? unavailable() : undefined;
const machineBefore = skip ? undefined : machinePackage();

function keymaker(sb: Sandbox, args: string[]): Promise<ExecResult> {
  return sb.exec(['node', CLI, ...args], { timeoutMs: 360_000 });
}

const describeHere = skip
  ? (name: string, body: () => void) => describe.skip(`${name} (skipped: ${skip})`, body)
  : describeWithSandbox;

describeHere('keymaker install where libnss-systemd is missing: apt-get installs it, agent mode', () => {
  let sb: Sandbox | undefined;
  let tmp: string;
  let port: number;
  let endpoint: string;
  let systemdVersion: string;
  const library = machineBefore?.library ?? '';

  const dpkgStatus = async (pkg: string) =>
    (await sb!.exec(['dpkg-query', '-W', '-f', '${db:Status-Abbrev} ${Version}', pkg])).stdout
      .replace(/\s+/g, ' ')
      .trim();

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-agent-package-e2e.'));
    endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    const iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-pkg-host', 'keymaker_require_iam_group=ssh-users');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const alice = makeSshKeyPair(tmp, 'alice');
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh-users', ['alice']);

    sb = await createSandbox({ overlayUsr: true });
    systemdVersion = (await dpkgStatus('systemd')).replace(/^ii\s+/, '');
    await sb.execOk(['dpkg', '--remove', '--force-depends', 'libnss-systemd'], { timeoutMs: 60_000 });
    // After the removal: its postrm edits nsswitch.conf.
    await sb.writeFile('/etc/nsswitch.conf', NSSWITCH, 0o644);
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the package is gone inside the sandbox and still on this machine', async () => {
    expect(await sb!.exists(library)).toBe(false);
    expect(await dpkgStatus('libnss-systemd')).toMatch(/^rc/);
    expect(fs.existsSync(library)).toBe(true);
  });

  test('install (no --mode): agent mode, libnss-systemd installed with apt-get alone, an IAM user resolves', async () => {
    const install = await keymaker(sb!, [...installArgs(endpoint, port), '--mode', 'auto']);
    expect({ code: install.code, stderr: install.code === 0 ? '' : install.stderr }).toEqual({ code: 0, stderr: '' });
    expect(install.stderr).toContain('agent mode (libnss-systemd can serve IAM users here)');
    expect(install.stderr).toContain(
      `installed libnss-systemd (/usr/bin/apt-get install -y -q --no-install-recommends --no-remove libnss-systemd=${systemdVersion})`,
    );
    // The package's postinst added systemd to four lines; keymaker put the file back and wrote its own three.
    expect(install.stderr).toContain('put back /etc/nsswitch.conf as it was');
    expect(await sb!.exists(library)).toBe(true);
    expect(await dpkgStatus('libnss-systemd')).toBe(`ii ${systemdVersion}`);
    // Nothing else changed version: systemd is what it was.
    expect(await dpkgStatus('systemd')).toBe(`ii ${systemdVersion}`);
    expect(await sb!.readFile('/etc/nsswitch.conf')).toBe(
      NSSWITCH.replace(/^(passwd|group|shadow):(\s+)files$/gm, '$1:$2files systemd'),
    );
    expect(await sb!.readFile('/etc/passwd')).not.toMatch(/^alice:/m);
    const entry = await resolvesThroughAgent(sb!, 'passwd', 'alice');
    expect(entry).toMatch(/^alice:x:\d+:\d+:/);
  });

  test('uninstall: nsswitch.conf byte for byte, the package left installed and said so', async () => {
    const r = await keymaker(sb!, ['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stderr).toContain(
      'left libnss-systemd installed: keymaker install added it for agent mode and uninstall does not remove packages (apt-get remove libnss-systemd does)',
    );
    expect(fs.readFileSync(sb!.hostPath('/etc/nsswitch.conf'), 'utf8')).toBe(NSSWITCH);
    expect(await dpkgStatus('libnss-systemd')).toBe(`ii ${systemdVersion}`);
    expect(await passwdEntry(sb!, 'alice')).toBeUndefined();
  });

  test("this machine's libnss-systemd is untouched", async () => {
    await sb!.destroy();
    expect(machinePackage()).toEqual(machineBefore);
  });
});
