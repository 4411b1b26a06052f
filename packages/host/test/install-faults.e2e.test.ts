// `keymaker install` interrupted: SIGKILL between any two of its file writes, and a full disk
// under the sshd drop-in directory and under /etc/pam.d. The live sshd and PAM configuration must
// never be half-written (sshd -t passes at every kill point), a killed install must be fully undone
// by `keymaker uninstall` (or completed by a second install), and a failed one must leave the previous
// bytes live. (A failing `sshd -t` and a failing reload: install.e2e.test.ts.)
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXIT_CODES } from '@keymaker/core';
import { createSandbox, describeWithSandbox, type ExecResult, type Sandbox } from '../../../tools/sandbox/sandbox';
import { DEFAULT_PATHS } from '../src/system/paths';
import { bundleEntry, REPO_ROOT } from './e2e-host';

jest.setTimeout(180_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
/** The host bundle `keymaker install` copies by default (next to the CLI). */
const HOST_BUNDLE = path.join(REPO_ROOT, 'packages/cli/dist/keymaker-host.js');
const KEYMAKER_PATHS = [
  '/etc/keymaker',
  DEFAULT_PATHS.sshdDropIn,
  DEFAULT_PATHS.cronFile,
  DEFAULT_PATHS.libDir,
  DEFAULT_PATHS.authorizedKeysCommand,
  DEFAULT_PATHS.pamCreateAccountCommand,
  DEFAULT_PATHS.syncGroupsCommand,
  DEFAULT_PATHS.stateDir,
  DEFAULT_PATHS.cacheDir,
];
/** Files whose bytes must be exactly as before once install failed or was undone. */
const SYSTEM_FILES = [
  '/etc/ssh/sshd_config',
  '/etc/pam.d/sshd',
  '/etc/passwd',
  '/etc/group',
  '/etc/shadow',
  '/etc/gshadow',
];

describeWithSandbox('install interrupted or out of disk', () => {
  let sb: Sandbox;
  let port: number;
  const original: Record<string, Buffer> = {};
  let originalDropIns: string;
  let installedPam: string;
  let installedDropIn: string;
  /** install-fault-entry.ts bundled: the same install, through a HostSystem that pauses after a write. */
  let faultyInstall: string;

  const installArgs = () => [
    'install',
    '--mode',
    'compat',
    '--region',
    'us-east-1',
    '--sshd-pid-file',
    `/run/sshd-${port}.pid`,
  ];
  const keymaker = (args: string[]): Promise<ExecResult> => sb.exec(['node', CLI, ...args]);
  const dropIns = async () =>
    (
      await sb.execOk([
        'bash',
        '-c',
        'cd /etc/ssh/sshd_config.d && for f in $(ls -A); do echo "$f $(sha256sum < "$f")"; done',
      ])
    ).stdout;

  async function expectAsBefore(what: string): Promise<void> {
    for (const p of SYSTEM_FILES)
      expect({ what, p, same: fs.readFileSync(sb.hostPath(p)).equals(original[p]!) }).toEqual({ what, p, same: true });
    expect({ what, dropIns: await dropIns() }).toEqual({ what, dropIns: originalDropIns });
    for (const p of KEYMAKER_PATHS) expect({ what, p, exists: await sb.exists(p) }).toEqual({ what, p, exists: false });
    // No temp file of an atomic write or a candidate config left behind.
    const strays = (
      await sb.exec([
        'bash',
        '-c',
        'ls -A /etc/ssh /etc/ssh/sshd_config.d /etc/pam.d /etc/cron.d /usr/local/sbin | grep -i keymaker',
      ])
    ).stdout;
    expect({ what, strays }).toEqual({ what, strays: '' });
    expect({ what, sshdT: (await sb.exec(['sshd', '-t'])).code }).toEqual({ what, sshdT: 0 });
    expect({ what, authorizedKeysCommand: await effective('authorizedkeyscommand') }).toEqual({
      what,
      authorizedKeysCommand: 'none',
    });
  }

  async function effective(keyword: string): Promise<string> {
    const out = (await sb.execOk(['sshd', '-T'])).stdout;
    return (
      out
        .split('\n')
        .find((line) => line.startsWith(`${keyword} `))
        ?.slice(keyword.length + 1) ?? ''
    );
  }

  /** install as `keymaker install` runs it, reporting each write on stderr and stopping after the Nth. */
  const installPausingAfterWrite = (n: number) =>
    ['node', faultyInstall, String(n), `/run/sshd-${port}.pid`, HOST_BUNDLE].map((a) => `'${a}'`).join(' ');

  /** Runs install until it reports its Nth write, then SIGKILLs it (all inside the sandbox). */
  async function installKilledAfterWrite(n: number): Promise<string> {
    const script = `
      rm -f /run/install-fault.err
      ${installPausingAfterWrite(n)} 2>/run/install-fault.err >/dev/null &
      pid=$!
      for i in $(seq 1 400); do grep -q 'paused after write' /run/install-fault.err && break; kill -0 $pid 2>/dev/null || break; sleep 0.025; done
      kill -9 $pid 2>/dev/null; wait $pid; echo "exit $?"; cat /run/install-fault.err`;
    return (await sb.execOk(['bash', '-c', script])).stdout;
  }

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    faultyInstall = await bundleEntry(
      path.join(__dirname, 'install-fault-entry.ts'),
      path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-install-fault.')), 'install-fault-entry.mjs'),
    );
    sb = await createSandbox();
    ({ port } = await sb.startSshd());
    for (const p of SYSTEM_FILES) original[p] = fs.readFileSync(sb.hostPath(p));
    originalDropIns = await dropIns();
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  test('killed after each of its writes: sshd -t passes on the live config, and uninstall (or install again) restores or completes it', async () => {
    // A full run lists every write it makes.
    const full = await sb.exec(['bash', '-c', installPausingAfterWrite(1000)]);
    expect(full.code).toBe(0);
    const writes = full.stderr
      .split('\n')
      .filter((l) => l.startsWith('keymaker-test: write '))
      .map((l) => l.replace(/^keymaker-test: write \d+: /, ''));
    expect(writes).toEqual(
      expect.arrayContaining(['/etc/pam.d/sshd', DEFAULT_PATHS.sshdDropIn, '/var/lib/keymaker/install-state.json']),
    );
    installedPam = await sb.readFile('/etc/pam.d/sshd');
    installedDropIn = await sb.readFile(DEFAULT_PATHS.sshdDropIn);
    expect((await keymaker(['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`])).code).toBe(0);
    await expectAsBefore('after a complete install and uninstall');

    let killed = 0;
    for (let n = 1; n <= writes.length; n++) {
      const what = `killed after write ${n} (${writes[n - 1]})`;
      const out = await installKilledAfterWrite(n);
      expect({ what, out }).toEqual({
        what,
        out: expect.stringMatching(new RegExp(`^exit 137\\n[^]*paused after write ${n}\\n`)),
      });
      killed += 1;
      // Never a half-written file: each live file is either the original or the installed version.
      expect({ what, sshdT: (await sb.exec(['sshd', '-t'])).code }).toEqual({ what, sshdT: 0 });
      const pam = await sb.readFile('/etc/pam.d/sshd');
      expect({ what, pam: [original['/etc/pam.d/sshd']!.toString(), installedPam].includes(pam) }).toEqual({
        what,
        pam: true,
      });
      if (await sb.exists(DEFAULT_PATHS.sshdDropIn))
        expect({ what, dropIn: await sb.readFile(DEFAULT_PATHS.sshdDropIn) }).toEqual({
          what,
          dropIn: installedDropIn,
        });
      expect({
        what,
        sshdConfig: fs.readFileSync(sb.hostPath('/etc/ssh/sshd_config')).equals(original['/etc/ssh/sshd_config']!),
      }).toEqual({ what, sshdConfig: true });

      if (n % 3 === 0) {
        // Recovery by finishing the job: a second install completes it, then uninstall undoes all.
        const again = await keymaker(installArgs());
        expect({ what, code: again.code, stderr: again.stderr }).toEqual({ what, code: 0, stderr: expect.any(String) });
        expect(await effective('authorizedkeyscommand')).toBe(`${DEFAULT_PATHS.authorizedKeysCommand} %u %f`);
      }
      const undo = await keymaker(['uninstall', '--sshd-pid-file', `/run/sshd-${port}.pid`]);
      expect({ what, code: undo.code, warnings: undo.stderr.split('\n').filter((l) => l.includes('warning')) }).toEqual(
        { what, code: 0, warnings: [] },
      );
      await expectAsBefore(`${what}, then ${n % 3 === 0 ? 'install and ' : ''}uninstall`);
    }
    expect(killed).toBeGreaterThanOrEqual(10);
    console.log(
      `install killed at ${killed} points (after each write: ${writes.join(', ')}); every one undone or completed`,
    );
    // sshd lived through it all and still takes a reload.
    await sb.reloadSshd();
  });

  test.each([
    ['the sshd drop-in directory', '/etc/ssh/sshd_config.d'],
    ['/etc/pam.d', '/etc/pam.d'],
  ])('a full disk under %s: install fails, says so, and every file is as before', async (_what, dir) => {
    // A tiny tmpfs with the directory's files, then filled up.
    await sb.execOk([
      'bash',
      '-c',
      `set -e
      mkdir -p /run/full-copy && cp -a ${dir}/. /run/full-copy/
      mount -t tmpfs -o size=64k tmpfs ${dir}
      cp -a /run/full-copy/. ${dir}/ && rm -rf /run/full-copy
      dd if=/dev/zero of=${dir}/.filler bs=1k 2>/dev/null || true`,
    ]);
    try {
      const before = (
        await sb.execOk([
          'bash',
          '-c',
          `cd ${dir} && ls -A | grep -v '^.filler$' | while read f; do echo "$f $(sha256sum < "$f")"; done`,
        ])
      ).stdout;
      const r = await keymaker(installArgs());
      expect(r.code).toBe(EXIT_CODES.SYSTEM_COMMAND_FAILED);
      expect(r.stderr).toMatch(
        new RegExp(
          `\nkeymaker: install failed while writing ${dir}/[^:]+: ENOSPC: no space left on device, write; every file was restored as it was\n$`,
        ),
      );
      const after = (
        await sb.execOk([
          'bash',
          '-c',
          `cd ${dir} && ls -A | grep -v '^.filler$' | while read f; do echo "$f $(sha256sum < "$f")"; done`,
        ])
      ).stdout;
      expect(after).toBe(before);
    } finally {
      // The directory underneath was never touched.
      await sb.execOk(['umount', dir]);
    }
    await expectAsBefore(`full ${dir}`);
  });
});
