// Homes on EFS against a real NFS server (issue 15). The kernel here has no NFS client or server, so: nfs-ganesha
// (userspace, FSAL_VFS) exports a directory over NFSv3 inside a sandbox with its own network namespace, and
// fuse-nfs mounts it twice: on /home/keymaker (host A) and on /home/hostb (host B, its own NFS client; its hook
// runs with that mount bound over /home/keymaker in a mount namespace of its own). Over NFSv3 libnfs sends each
// process's uid and gid, so the server's root squash treats root as nobody, as EFS does without ClientRootAccess.
// The hook is the real bundle's pam_efs_home, run as pam_exec runs it (PAM_USER, PAM_TYPE), and once through a
// real sshd session. Built and installed by tools/nfs/setup.sh (npm test runs it); without it, this says why and skips.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { EXIT_CODES } from '@keymaker/core';
import { createSandbox, sandboxSupport, type Sandbox } from '../../../tools/sandbox/sandbox';
import {
  buildHostBundle,
  REPO_ROOT,
  startSyslogListener,
  SYSLOG_SOCKET,
  syslogLines,
  writeHostConfig,
} from './e2e-host';
import { DEFAULT_HOST_CONFIG } from '../src/config/host-config';
import { DEFAULT_PATHS } from '../src/system/paths';
import { efsHomeSessionLine } from '../src/install/pam';

jest.setTimeout(120_000);

const FUSE_NFS = path.join(REPO_ROOT, '.toolchain/fuse-nfs/bin/fuse-nfs');
const BASE = '/home/keymaker';
const EXPORT = '/home/export';
const ALICE = 1_879_048_201;
const CAROL = 1_879_048_202;
const DAVE = 1_879_048_203;
const ERIN = 1_879_048_204;
const MALLORY = 1_879_048_205;

/** Why this machine cannot run these tests, or undefined. */
function nfsUnavailable(): string | undefined {
  const sandbox = sandboxSupport();
  if (!sandbox.ok) return sandbox.reason;
  const recorded = path.join(REPO_ROOT, '.toolchain/fuse-nfs/UNAVAILABLE');
  if (fs.existsSync(recorded)) return `tools/nfs/setup.sh: ${fs.readFileSync(recorded, 'utf8').trim()}`;
  if (!fs.existsSync(FUSE_NFS)) return `no ${FUSE_NFS}: run tools/nfs/setup.sh (npm test does)`;
  for (const tool of ['/usr/bin/ganesha.nfsd', '/usr/sbin/rpcbind', '/usr/bin/setpriv'])
    if (!fs.existsSync(tool)) return `no ${tool}: run tools/nfs/setup.sh`;
  if (!fs.existsSync('/dev/fuse')) return 'no /dev/fuse';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'no ip (iproute2)';
  }
  return undefined;
}

const unavailable = nfsUnavailable();
if (unavailable) console.warn(`efs-home.e2e: skipped: ${unavailable}`);
const d = unavailable ? describe.skip : describe;

interface Hook {
  code: number;
  stderr: string;
}

d.each(['root_squash', 'no_root_squash'] as const)('homes on an NFS share (%s)', (squash) => {
  let sb: Sandbox;
  let bundle: string;
  const node = '/run/keymaker-sandbox/bin/node';

  /** pam_efs_home for USER, as pam_exec runs it; on host B through B's own NFS mount. */
  const hook = async (user: string, host: 'A' | 'B' = 'A'): Promise<Hook> => {
    const argv = [node, bundle, 'pam_efs_home'];
    const env = { PAM_USER: user, PAM_TYPE: 'open_session', PAM_RHOST: '127.0.0.1' };
    const r =
      host === 'A'
        ? await sb.exec(argv, { env })
        : await sb.exec(
            [
              'unshare',
              '--mount',
              '--propagation',
              'private',
              'sh',
              '-c',
              `mount --bind /home/hostb ${BASE} && exec "$@"`,
              'host-b',
              ...argv,
            ],
            { env },
          );
    return { code: r.code, stderr: r.stderr };
  };
  const owner = async (p: string) => (await sb.execOk(['stat', '-c', '%F %u:%g %a', p])).stdout.trim();
  const asUser = (uid: number, argv: string[]) =>
    sb.execOk(['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', ...argv]);
  /**
   * What a user sees through another NFS client once its caches (FUSE's 1 s) have expired: polled, at most 10 s.
   * As the user: under root squash root cannot look into a 0700 home on any host.
   */
  const seenOnB = async (uid: number, p: string) => {
    for (let waited = 0; ; waited += 200) {
      const r = await sb.exec([
        'setpriv',
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--',
        'stat',
        '-c',
        '%F %u:%g %a',
        p,
      ]);
      if (r.code === 0 || waited >= 10_000) return r.code === 0 ? r.stdout.trim() : r.stderr.trim();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  // As keymaker makes them: the derived UID, a private group with the same GID, the home below the share.
  const addUser = async (name: string, uid: number, extra: string[] = []) => {
    if (!extra.includes('--non-unique')) await sb.execOk(['groupadd', '--gid', String(uid), name]);
    await sb.execOk([
      'useradd',
      '--uid',
      String(uid),
      '--gid',
      String(uid),
      '--home-dir',
      `${BASE}/${name}`,
      '--no-create-home',
      ...extra,
      name,
    ]);
  };

  beforeAll(async () => {
    bundle = await buildHostBundle();
    sb = await createSandbox({ network: 'private' });
    await sb.execOk(['mkdir', '-p', '-m', '1777', EXPORT]);
    await sb.execOk(['chmod', '1777', EXPORT]);
    await sb.execOk([path.join(REPO_ROOT, 'tools/nfs/start-server.sh'), EXPORT, squash]);
    await sb.execOk([path.join(REPO_ROOT, 'tools/nfs/mount.sh'), FUSE_NFS, EXPORT, BASE]);
    await sb.execOk([path.join(REPO_ROOT, 'tools/nfs/mount.sh'), FUSE_NFS, EXPORT, '/home/hostb']);
    await startSyslogListener(sb);
    await writeHostConfig(sb, {
      ...DEFAULT_HOST_CONFIG,
      region: 'eu-west-1',
      efsHome: 'fs-0123456789abcdef0',
      syslogSocket: SYSLOG_SOCKET,
    });
    await sb.writeFile('/etc/skel/.keymaker-skel', 'from /etc/skel\n', 0o644);
    await addUser('alice', ALICE);
    await addUser('carol', CAROL);
    await addUser('dave', DAVE);
    await addUser('erin', ERIN);
    await addUser('mallory', MALLORY);
    // bob's derived UID collides with alice's (-o: useradd allows it only when told).
    await addUser('bob', ALICE, ['--non-unique']);
    await sb.execOk(['useradd', '--create-home', 'localuser']);
  });
  afterAll(async () => {
    await sb?.destroy();
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('root squash is real here: root makes nobody-owned directories only when squashed', async () => {
    const r = await sb.exec(['mkdir', `${BASE}/root-probe`]);
    expect(r.code).toBe(0);
    expect(await owner(`${BASE}/root-probe`)).toMatch(squash === 'root_squash' ? / 65534:65534 / : / 0:0 /);
    await sb.execOk(['rmdir', `${BASE}/root-probe`]);
  });

  test('first login on host A makes the home on the share, owned by her, 0700, with the skeleton', async () => {
    expect(await hook('alice')).toEqual({ code: 0, stderr: '' });
    expect(await owner(`${BASE}/alice`)).toBe(`directory ${ALICE}:${ALICE} 700`);
    expect(await seenOnB(ALICE, `${BASE}/alice/.keymaker-skel`)).toBe(`regular file ${ALICE}:${ALICE} 644`);
    // On the server's disk too, not only as fuse-nfs shows it.
    expect(await owner(`${EXPORT}/alice`)).toBe(`directory ${ALICE}:${ALICE} 700`);
    expect((await syslogLines(sb)).join('\n')).toMatch(/efs_home user="alice" .*decision=created .*by=user/);
  });

  test('host B sees the same home and her files; its login accepts it and copies nothing', async () => {
    await asUser(ALICE, ['sh', '-c', `echo notes > ${BASE}/alice/notes.txt`]);
    expect(await seenOnB(ALICE, '/home/hostb/alice/notes.txt')).toBe(`regular file ${ALICE}:${ALICE} 644`);
    expect((await asUser(ALICE, ['cat', '/home/hostb/alice/notes.txt'])).stdout).toBe('notes\n');
    await asUser(ALICE, ['rm', `${BASE}/alice/.keymaker-skel`]);
    expect(await hook('alice', 'B')).toEqual({ code: 0, stderr: '' });
    expect(
      (
        await sb.exec([
          'setpriv',
          `--reuid=${ALICE}`,
          `--regid=${ALICE}`,
          '--clear-groups',
          '--',
          'test',
          '-e',
          `${BASE}/alice/.keymaker-skel`,
        ])
      ).code,
    ).toBe(1);
  });

  test('two hosts making the same home at once end with one home, hers', async () => {
    const [a, b] = await Promise.all([hook('carol', 'A'), hook('carol', 'B')]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(await owner(`${BASE}/carol`)).toBe(`directory ${CAROL}:${CAROL} 700`);
    expect((await sb.execOk(['ls', '-A', EXPORT])).stdout.split('\n').filter((n) => n === 'carol')).toHaveLength(1);
  });

  test('a home another user made, or a symlink in its place: refused and logged, left as it was', async () => {
    await asUser(MALLORY, ['mkdir', `${BASE}/dave`]);
    await asUser(MALLORY, ['ln', '-s', '/root', `${BASE}/erin`]);
    expect((await hook('dave')).code).toBe(EXIT_CODES.EFS_HOME_REFUSED);
    expect((await hook('erin', 'B')).code).toBe(EXIT_CODES.EFS_HOME_REFUSED);
    expect(await owner(`${BASE}/dave`)).toBe(`directory ${MALLORY}:${MALLORY} 755`);
    expect((await sb.execOk(['stat', '-c', '%F %u', `${BASE}/erin`])).stdout.trim()).toBe(`symbolic link ${MALLORY}`);
    const log = (await syslogLines(sb)).join('\n');
    expect(log).toMatch(/efs_home user="dave" .*decision=refused reason=EFS_HOME_REFUSED: .*owned by uid 1879048205/);
    expect(log).toMatch(/efs_home user="erin" .*decision=refused reason=EFS_HOME_REFUSED: .*is a symlink/);
  });

  test('a second IAM user whose derived UID already owns a home on the share gets none', async () => {
    expect((await hook('bob')).code).toBe(EXIT_CODES.EFS_HOME_REFUSED);
    expect((await sb.exec(['test', '-e', `${BASE}/bob`])).code).toBe(1);
    expect((await syslogLines(sb)).join('\n')).toMatch(/user="bob" .*already owns \/home\/keymaker\/alice/);
  });

  test('a real sshd session runs the hook: alice logs in to her share home', async () => {
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-efs-key.'));
    try {
      const key = path.join(keyDir, 'id');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      const pub = fs.readFileSync(`${key}.pub`, 'utf8').trim();
      await sb.writeFile('/usr/local/sbin/test-keys', `#!/bin/sh\n[ "$1" = alice ] && echo '${pub}'\nexit 0\n`, 0o755);
      await sb.writeFile(
        DEFAULT_PATHS.efsHomeCommand,
        `#!/bin/sh\nunset NODE_OPTIONS NODE_PATH\nexec ${node} ${bundle} pam_efs_home "$@"\n`,
        0o755,
      );
      const pam = (await sb.readFile('/etc/pam.d/sshd')).toString();
      await sb.writeFile('/etc/pam.d/sshd', `${pam.trimEnd()}\n${efsHomeSessionLine(DEFAULT_PATHS)}\n`, 0o644);
      await sb.writeFile(
        '/etc/ssh/sshd_config.d/50-efs-test.conf',
        'AuthorizedKeysCommand /usr/local/sbin/test-keys %u\nAuthorizedKeysCommandUser nobody\nAuthorizedKeysFile none\n',
      );
      await sb.startSshd();
      const ok = await sb.ssh('alice', { identityFile: key, inside: true, batch: true, command: 'pwd; cat notes.txt' });
      expect({ code: ok.code, stdout: ok.stdout }).toEqual({ code: 0, stdout: `${BASE}/alice\nnotes\n` });

      // The share goes away: alice's session is refused; a local account still logs in (same hook).
      await sb.execOk(['fusermount', '-u', BASE]);
      const refused = await sb.ssh('alice', { identityFile: key, inside: true, batch: true, command: 'pwd' });
      expect(refused.code).not.toBe(0);
      expect((await sb.exec(['test', '-e', `${BASE}/alice`])).code).toBe(1);
      expect((await hook('localuser')).code).toBe(0);
      expect((await hook('alice')).code).toBe(EXIT_CODES.EFS_HOME_REFUSED);
      expect((await hook('carol')).code).toBe(EXIT_CODES.EFS_HOME_REFUSED);
      // Nothing was made on the local disk in the share's place.
      expect((await sb.execOk(['ls', '-A', BASE])).stdout).toBe('');
      expect((await syslogLines(sb)).join('\n')).toMatch(
        /user="alice" .*decision=refused .*not mounted on \/home\/keymaker/,
      );
      await sb.execOk([path.join(REPO_ROOT, 'tools/nfs/mount.sh'), FUSE_NFS, EXPORT, BASE]);
      expect((await hook('alice')).code).toBe(0);
    } finally {
      fs.rmSync(keyDir, { recursive: true, force: true });
    }
  });
});

// The install side for real: `keymaker install --efs-home` writes keymaker's fstab block (no systemd here), mounts
// the share (mount(8) reaches the NFS server through fuse-nfs: a `mount` earlier on PATH stands in for
// mount.nfs4, which has no kernel client here), puts the session hook in PAM, and status shows the mount;
// uninstall unmounts it and gives fstab and pam.d/sshd back byte for byte.
d('keymaker install --efs-home (fstab, no systemd)', () => {
  let sb: Sandbox;
  const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
  const keymaker = (args: string[]) => sb.exec(['node', CLI, ...args], { timeoutMs: 60_000 });

  beforeAll(async () => {
    sb = await createSandbox({ network: 'private' });
    await sb.execOk(['mkdir', '-p', '-m', '1777', EXPORT]);
    await sb.execOk([path.join(REPO_ROOT, 'tools/nfs/start-server.sh'), EXPORT, 'no_root_squash']);
    await sb.writeFile(
      '/usr/local/sbin/mount',
      `#!/bin/sh\nif [ "$#" = 1 ] && [ "$1" = ${BASE} ]; then exec ${path.join(REPO_ROOT, 'tools/nfs/mount.sh')} ${FUSE_NFS} ${EXPORT} ${BASE}; fi\nexec /usr/bin/mount "$@"\n`,
      0o755,
    );
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  test('install mounts the share before sshd; status shows it; uninstall unmounts and restores', async () => {
    const before = { fstab: await sb.readFile('/etc/fstab'), pam: await sb.readFile('/etc/pam.d/sshd') };
    const args = ['install', '--mode', 'compat', '--region', 'eu-west-1', '--reload', 'none'];
    const installed = await keymaker([...args, '--efs-home', 'fs-0123456789abcdef0:/homes']);
    expect(installed.code).toBe(0);
    expect(installed.stderr).toMatch(/mounted \/home\/keymaker/);
    const fstab = await sb.readFile('/etc/fstab');
    expect(fstab.startsWith(before.fstab)).toBe(true);
    expect(fstab.slice(before.fstab.length)).toBe(
      '# BEGIN keymaker efs home ("keymaker uninstall" removes this block)\n' +
        'fs-0123456789abcdef0.efs.eu-west-1.amazonaws.com:/homes /home/keymaker nfs4 nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev 0 0\n' +
        '# END keymaker efs home\n',
    );
    expect((await sb.execOk(['findmnt', '-n', '-o', 'FSTYPE', BASE])).stdout.trim()).toBe('fuse.fuse-nfs');
    expect(await sb.readFile('/etc/pam.d/sshd')).toContain(efsHomeSessionLine(DEFAULT_PATHS));
    expect(JSON.parse(await sb.readFile(DEFAULT_PATHS.configFile))).toMatchObject({
      efsHome: 'fs-0123456789abcdef0:/homes',
    });

    const status = await keymaker(['status', '--skip-sshd', '--json']);
    const row = (
      JSON.parse(status.stdout) as { checks: { id: string; status: string; summary: string }[] }
    ).checks.find((c) => c.id === 'efsHome');
    expect(row?.status).toBe('ok');
    expect(row?.summary).toMatch(/^mounted on \/home\/keymaker from nfs:\/\/127\.0\.0\.1/);

    // Installed again: nothing changes, the share is mounted already.
    const again = await keymaker([...args, '--json']);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('/home/keymaker is mounted already');

    const removed = await keymaker(['uninstall', '--reload', 'none']);
    expect(removed.code).toBe(0);
    expect(await sb.readFile('/etc/fstab')).toBe(before.fstab);
    expect(await sb.readFile('/etc/pam.d/sshd')).toBe(before.pam);
    expect((await sb.exec(['findmnt', BASE])).code).not.toBe(0);
    expect((await sb.exec(['test', '-e', BASE])).code).toBe(1);
    // The homes on the share are never touched: the export still holds what it held.
    expect((await sb.execOk(['test', '-d', EXPORT])).code).toBe(0);
  });

  test('--efs-home role without a readable role: the rest is installed, the share is not, and install says why', async () => {
    const r = await keymaker([
      'install',
      '--mode',
      'compat',
      '--region',
      'eu-west-1',
      '--reload',
      'none',
      '--efs-home',
      'role',
    ]);
    expect(r.code).toBe(EXIT_CODES.INVALID_ROLE_CONFIG);
    expect(r.stderr).toMatch(/--efs-home role: the role description could not be read .*run keymaker install again/);
    expect(await sb.readFile('/etc/fstab')).not.toContain('keymaker');
    expect((await keymaker(['uninstall', '--reload', 'none'])).code).toBe(0);
  });
});
