// Abuse of a host installed with the real `keymaker install`: invalid and random login names sent
// to the PAM hook (which runs before authentication), IAM users named like every pre-existing
// local account, the owners and modes of everything keymaker writes, and config files another user
// could change. IAM is moto behind tools/faults' proxy, which counts every IAM/STS request.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
import { EXIT_CODES, isInManagedRange, parseSshPublicKey } from '@keymaker/core';
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
import { MAX_REQUESTS_PER_LOOKUP, PAM_GUARD_POLICY } from '../src/login/pam-guard';
import { DEFAULT_PATHS, hostLoaderFiles } from '../src/system/paths';
import {
  bundleEntry,
  credentialsFileText,
  installArgs,
  randomAccountId,
  REPO_ROOT,
  startSyslogListener,
  SYSLOG_SOCKET,
  syslogLines,
} from './e2e-host';

import { createFaultProxy } from '../../../tools/faults/fault-proxy.cjs';

jest.setTimeout(180_000);

const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const LEGACY_UID = 26594;

/** Bundles the flood driver (real hook processes, or the hook's function in-process) for use inside the sandbox. */
async function buildDriver(dir: string): Promise<string> {
  const outfile = await bundleEntry(
    path.join(__dirname, 'pam-flood-driver.ts'),
    path.join(dir, 'pam-flood-driver.mjs'),
  );
  fs.chmodSync(dir, 0o755);
  return outfile;
}

function randomName(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let name = letters[Math.floor(Math.random() * 26)]!;
  for (let i = 0; i < 9; i++) name += (letters + '0123456789')[Math.floor(Math.random() * 36)];
  return name;
}

/** Names useradd or the lookup must never see: each must cost zero IAM calls. */
const INVALID_NAMES = [
  '',
  'Root',
  'ROOT',
  'Alice',
  'a b',
  ' alice',
  'alice ',
  'a\tb',
  'a\nb',
  'a\rroot',
  '-oProxyCommand=sh',
  '-rf',
  '--help',
  '../../etc/passwd',
  '/etc/passwd',
  'a/b',
  '.',
  '..',
  'alice.',
  '1alice',
  '0',
  '$(id)',
  '`id`',
  'a;id',
  'a|id',
  'a&id',
  'a:b',
  'a,b',
  'a*',
  '?',
  'a=b',
  'a@b',
  'a+b',
  'ünïcödé',
  'алиса',
  '名前',
  'a\u202eb',
  'a\u0000b'.replace('\u0000', '\u0001'),
  'x'.repeat(33),
  'a'.repeat(256),
  'alice$',
  '%u',
  '${PAM_USER}',
  "a'b",
  'a"b',
  'a\\b',
  '\u{1F600}',
];

describeWithSandbox('abuse of an installed host', () => {
  let sb: Sandbox;
  let tmp: string;
  let driver: string;
  let iam: IAMClient;
  let port: number;
  let proxy: {
    url: string;
    stats(): { total: number; counts: Record<string, number> };
    resetStats(): void;
    stop(): Promise<void>;
  };
  let alice: { privateKeyPath: string; publicKey: string };
  let passwdAtStart: string;

  const hook = (name: string) =>
    sb.exec([DEFAULT_PATHS.pamCreateAccountCommand], {
      env: { PAM_TYPE: 'auth', PAM_USER: name, PAM_RHOST: '203.0.113.9', PAM_SERVICE: 'sshd' },
    });
  // As sshd runs it: `%u %f`, the fingerprint of the key the client offers (a made-up one unless given).
  const lookupAsSshd = (name: string, fingerprint = 'SHA256:abc') =>
    sb.exec(['runuser', '-u', 'keymaker', '--', DEFAULT_PATHS.authorizedKeysCommand, name, fingerprint]);
  const fingerprintOf = (publicKey: string) => {
    const parsed = parseSshPublicKey(publicKey);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.key.fingerprint;
  };
  const sync = () => sb.exec([DEFAULT_PATHS.syncGroupsCommand], { timeoutMs: 90_000 });
  const stat = async (p: string) => (await sb.execOk(['stat', '-c', '%U:%G %a %F', p])).stdout.trim();

  beforeAll(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (cd packages/cli && npx tsup)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-abuse-e2e.'));
    driver = await buildDriver(tmp);
    alice = makeSshKeyPair(tmp, 'alice');
    fs.chmodSync(tmp, 0o755);

    const endpoint = motoEndpoint();
    proxy = await createFaultProxy({ target: endpoint }).start();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    iam = iamClient(endpoint, admin);
    // The legacy (1.x) UID scheme: its range holds a pre-existing local user below.
    const role = await createRoleWithDescription(iam, 'keymaker-host', 'abuse e2e keymaker_uid_scheme=legacy');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    await createUserWithKeys(iam, 'alice', [{ body: alice.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'keymaker_devs', ['alice']);

    sb = await createSandbox();
    // Pre-existing local users: a cloud image's default user, and one made by hand in the legacy range.
    await sb.execOk(['useradd', '--create-home', 'ubuntu']);
    await sb.execOk(['useradd', '--create-home', '--uid', String(LEGACY_UID), 'legacy']);
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    ({ port } = await sb.startSshd());
    const install = await sb.exec(['node', CLI, ...installArgs(proxy.url, port)]);
    expect({ code: install.code, stderr: install.stderr }).toEqual({
      code: 0,
      stderr: expect.stringContaining('reloaded sshd'),
    });
    // Decisions to a listener instead of /dev/log (no syslog daemon here); the file stays root:root 0644.
    const config = JSON.parse(await sb.readFile(DEFAULT_PATHS.configFile)) as Record<string, unknown>;
    await sb.writeFile(
      DEFAULT_PATHS.configFile,
      `${JSON.stringify({ ...config, syslogSocket: SYSLOG_SOCKET }, null, 2)}\n`,
      0o644,
    );
    await startSyslogListener(sb);
    passwdAtStart = await sb.readFile('/etc/passwd');
  });

  afterAll(async () => {
    await sb?.destroy();
    await proxy?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test(`${INVALID_NAMES.length} invalid names sent to the hook cost no IAM call, touch no state and create nothing`, async () => {
    proxy.resetStats();
    const codes = await Promise.all(INVALID_NAMES.map(async (name) => (await hook(name)).code));
    expect(codes).toEqual(INVALID_NAMES.map(() => EXIT_CODES.INVALID_USERNAME));
    expect(proxy.stats().total).toBe(0);
    expect(await sb.exists('/run/keymaker')).toBe(false);
    expect(await sb.readFile('/etc/passwd')).toBe(passwdAtStart);
    // The lookup too (sshd never runs it for a name without an account, but a name is a name).
    // ("-rf" and the like are refused as options: exit 2, usage.)
    const lookups = await Promise.all(INVALID_NAMES.slice(0, 16).map((name) => lookupAsSshd(name)));
    for (const [i, r] of lookups.entries()) {
      expect({ name: INVALID_NAMES[i], stdout: r.stdout, code: r.code }).toEqual({
        name: INVALID_NAMES[i],
        stdout: '',
        code: INVALID_NAMES[i]!.startsWith('-') ? EXIT_CODES.USAGE : EXIT_CODES.INVALID_USERNAME,
      });
    }
    expect(proxy.stats().total).toBe(0);
  });

  test('an IAM user named like each pre-existing local account never gets a key printed', async () => {
    const passwd = passwdAtStart
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(':'));
    const names = passwd.map((f) => f[0]!);
    expect(names).toEqual(
      expect.arrayContaining([
        'root',
        'daemon',
        'bin',
        'sys',
        'sync',
        'sshd',
        'nobody',
        'keymaker',
        'ubuntu',
        'legacy',
      ]),
    );
    // The legacy-range user is inside keymaker's UID range: only the derived-UID check keeps it out.
    expect(isInManagedRange(LEGACY_UID, 'legacy')).toBe(true);
    for (const name of names) await createUserWithKeys(iam, name, [{ body: alice.publicKey, status: 'Active' }]);
    await createGroupWithMembers(iam, 'keymaker_sudo', names);

    const results: [string, ExecResult][] = [];
    for (let i = 0; i < names.length; i += 6) {
      const batch = names.slice(i, i + 6);
      results.push(...(await Promise.all(batch.map(async (n) => [n, await lookupAsSshd(n)] as [string, ExecResult]))));
    }
    for (const [name, r] of results) {
      expect({ name, stdout: r.stdout, refused: r.code !== 0 }).toEqual({ name, stdout: '', refused: true });
    }
    expect(results.find(([n]) => n === 'legacy')![1].code).toBe(EXIT_CODES.NOT_MANAGED);
    const log = (await syslogLines(sb)).join('\n');
    for (const name of ['root', 'ubuntu', 'legacy', 'keymaker'])
      expect(log).toMatch(new RegExp(`lookup user="${name}".*decision=refused reason=NOT_MANAGED`));
    // The hook leaves every one of them alone (the account exists), and nothing changed.
    expect((await hook('ubuntu')).code).toBe(77);
    expect(await sb.readFile('/etc/passwd')).toBe(passwdAtStart);
    // The control: the same lookup does print the key of a managed name.
    const control = await lookupAsSshd('alice', fingerprintOf(alice.publicKey));
    expect({ code: control.code, stdout: control.stdout.trim() }).toEqual({ code: 0, stdout: alice.publicKey });
  });

  test('after install, a first login and a sync: owners and modes of everything keymaker wrote', async () => {
    const first = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' });
    expect(first.code).toBe(255);
    const second = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' });
    expect(second.stdout.trim()).toBe('alice');
    expect([0, EXIT_CODES.GROUP_NOT_MANAGED]).toContain((await sync()).code);

    const journal = JSON.parse(await sb.readFile('/var/lib/keymaker/install-state.json')) as {
      files: { path: string }[];
      dirs: { path: string }[];
    };
    const expected: Record<string, string> = {
      '/etc/keymaker/config.json': 'root:root 644',
      '/etc/keymaker/credentials': 'root:keymaker 640',
      [DEFAULT_PATHS.hostBundle]: 'root:root 644',
      // What the wrappers run (issue 14): the loader, its CommonJS bundle and their V8 code cache, all root's.
      [hostLoaderFiles(DEFAULT_PATHS).loader]: 'root:root 644',
      [hostLoaderFiles(DEFAULT_PATHS).bundle]: 'root:root 644',
      [hostLoaderFiles(DEFAULT_PATHS).cache]: 'root:root 644',
      [DEFAULT_PATHS.authorizedKeysCommand]: 'root:root 755',
      [DEFAULT_PATHS.pamCreateAccountCommand]: 'root:root 755',
      [DEFAULT_PATHS.syncGroupsCommand]: 'root:root 755',
      [DEFAULT_PATHS.cronFile]: 'root:root 644',
      [DEFAULT_PATHS.sshdDropIn]: 'root:root 644',
      [DEFAULT_PATHS.pamSshd]: 'root:root 644',
      // sudo from the IAM group: the drop-in as sudo wants it, and sudo.conf's group_source line.
      [DEFAULT_PATHS.sudoersDropIn]: 'root:root 440',
      [DEFAULT_PATHS.sudoConf]: 'root:root 644',
    };
    const files = journal.files.map((f) => f.path);
    expect(files.sort()).toEqual(Object.keys(expected).sort());
    for (const f of files) expect({ f, st: await stat(f) }).toEqual({ f, st: `${expected[f]} regular file` });
    expect(await stat('/var/lib/keymaker')).toBe('root:root 700 directory');
    expect(await stat('/var/lib/keymaker/install-state.json')).toBe('root:root 600 regular file');
    expect(await stat('/etc/keymaker')).toBe('root:root 755 directory');
    // The hook's rate-limit state and the login-to-login cache: root-written, not readable by others.
    expect(await stat('/run/keymaker')).toBe('root:root 700 directory');
    expect(await stat('/run/keymaker/pam-state.json')).toBe('root:root 600 regular file');
    const runtimeDirs = ['/run/keymaker', ...journal.dirs.map((x) => x.path)];
    if (await sb.exists(DEFAULT_PATHS.cacheDir)) runtimeDirs.push(DEFAULT_PATHS.cacheDir);
    const everything = (await sb.execOk(['find', ...new Set(runtimeDirs), '-printf', '%p %u %g %m %y\n'])).stdout
      .trim()
      .split('\n');
    for (const line of everything) {
      const [p, user, , mode, type] = line.split(' ');
      const bits = parseInt(mode!, 8);
      expect({ p, user, groupOrWorldWritable: (bits & 0o022) !== 0 }).toEqual({
        p,
        user: 'root',
        groupOrWorldWritable: false,
      });
      if (
        p!.startsWith('/run/keymaker') ||
        p!.startsWith(DEFAULT_PATHS.cacheDir) ||
        p!.startsWith('/var/lib/keymaker')
      ) {
        expect({ p, worldReadable: (bits & 0o004) !== 0 }).toEqual({ p, worldReadable: false });
      }
      expect(type).toMatch(/^[fd]$/);
    }
    // sshd's rule for what it and PAM execute: the real path and every parent root-owned, not group/world-writable.
    const node = (
      await sb.execOk([
        'bash',
        '-c',
        `readlink -f "$(sed -n 's/^exec \\([^ ]*\\) .*/\\1/p' ${DEFAULT_PATHS.authorizedKeysCommand})"`,
      ])
    ).stdout.trim();
    for (const exe of [
      node,
      DEFAULT_PATHS.hostBundle,
      DEFAULT_PATHS.authorizedKeysCommand,
      DEFAULT_PATHS.pamCreateAccountCommand,
      DEFAULT_PATHS.syncGroupsCommand,
    ]) {
      for (let p = exe; p !== '/'; p = path.dirname(p)) {
        const [owner, mode] = (await sb.execOk(['stat', '-L', '-c', '%u %a', p])).stdout.trim().split(' ');
        expect({ p, owner, writableByOthers: (parseInt(mode!, 8) & 0o022) !== 0 }).toEqual({
          p,
          owner: '0',
          writableByOthers: false,
        });
      }
    }
    // The sync lock file stays (a kernel lock is taken on it; removing it would race), root-only and not held.
    expect(await stat(DEFAULT_PATHS.syncLock)).toBe('root:root 600 regular file');
    expect((await sb.exec(['flock', '--nonblock', DEFAULT_PATHS.syncLock, 'true'])).code).toBe(0);
  });

  test('root commands and the lookup refuse a config or credentials file another user could change', async () => {
    const config = DEFAULT_PATHS.configFile;
    const creds = '/etc/keymaker/credentials';
    const cases: [string, string[], RegExp][] = [
      [
        'group-writable config',
        ['chmod', '664', config],
        /refusing to read \/etc\/keymaker\/config\.json: it is group-writable.*fix: chown root:root \/etc\/keymaker\/config\.json && chmod 644 \/etc\/keymaker\/config\.json/,
      ],
      ['config owned by nobody', ['chown', 'nobody', config], /it is owned by uid 65534, not root/],
      [
        'world-writable credentials',
        ['chmod', '666', creds],
        /refusing to read \/etc\/keymaker\/credentials: it is world-writable.*chown root:keymaker \/etc\/keymaker\/credentials && chmod 640/,
      ],
      [
        'group-writable /etc/keymaker',
        ['chmod', '775', '/etc/keymaker'],
        /its directory \/etc\/keymaker is group-writable.*chmod go-w \/etc\/keymaker/,
      ],
    ];
    for (const [what, breakIt, message] of cases) {
      await sb.execOk(breakIt);
      try {
        proxy.resetStats();
        const s = await sync();
        expect({ what, code: s.code, stderr: s.stderr.trim() }).toEqual({
          what,
          code: EXIT_CODES.UNSAFE_PATH,
          stderr: expect.stringMatching(message),
        });
        expect(s.stderr.trim().split('\n')).toHaveLength(1);
        expect({ what, code: (await hook(randomName())).code }).toEqual({ what, code: EXIT_CODES.UNSAFE_PATH });
        const l = await lookupAsSshd('alice');
        expect({ what, code: l.code, stdout: l.stdout }).toEqual({ what, code: EXIT_CODES.UNSAFE_PATH, stdout: '' });
        expect(proxy.stats().total).toBe(0);
      } finally {
        await sb.execOk([
          'bash',
          '-c',
          `chown root:root ${config} /etc/keymaker && chmod 644 ${config} && chmod 755 /etc/keymaker && chown root:keymaker ${creds} && chmod 640 ${creds}`,
        ]);
      }
    }
    // alice offering her own key (a made-up fingerprint may be refused from the lookup's per-name cache).
    expect((await lookupAsSshd('alice', fingerprintOf(alice.publicKey))).stdout.trim()).toBe(alice.publicKey);
  });

  test('two group syncs started at once: one applies, the other exits LOCKED changing nothing; the result is right', async () => {
    await createGroupWithMembers(iam, 'keymaker_ops', ['alice']);
    // A slow IAM read keeps the first run inside the lock while the second starts.
    await (proxy as unknown as { setFault(f: object): Promise<void> }).setFault({
      kind: 'slow',
      delayMs: 1500,
      action: 'ListGroups',
    });
    let out: string;
    try {
      const script = `${DEFAULT_PATHS.syncGroupsCommand} >/run/sync-a.out 2>&1 & a=$!; ${DEFAULT_PATHS.syncGroupsCommand} >/run/sync-b.out 2>&1 & b=$!; wait $a; echo "a=$?"; wait $b; echo "b=$?"; cat /run/sync-a.out /run/sync-b.out`;
      out = (await sb.execOk(['bash', '-c', script], { timeoutMs: 90_000 })).stdout;
    } finally {
      await (proxy as unknown as { setFault(f: object): Promise<void> }).setFault({ kind: 'none' });
    }
    const codes = [Number(/a=(\d+)/.exec(out)![1]), Number(/b=(\d+)/.exec(out)![1])].sort((x, y) => x - y);
    // The winner refuses the existing sudo group (47) after applying; the loser is LOCKED (45).
    expect({ codes, out }).toEqual({
      codes: [EXIT_CODES.LOCKED, EXIT_CODES.GROUP_NOT_MANAGED],
      out: expect.stringContaining('another keymaker run holds'),
    });
    expect(out.match(/created group ops/g)).toHaveLength(1);
    expect((await sb.execOk(['getent', 'group', 'ops'])).stdout.trim()).toMatch(/^ops:x:\d+:alice$/);
    expect((await sb.exec(['flock', '--nonblock', DEFAULT_PATHS.syncLock, 'true'])).code).toBe(0);
    const again = await sync();
    expect(again.stderr).toContain('no changes');
  });

  test('1,000 connection attempts with random names: a bounded number of IAM calls, no account created', async () => {
    // Start with a full bucket, as after a quiet spell.
    await sb.execOk(['rm', '-f', '/run/keymaker/pam-state.json']);
    const passwdBefore = await sb.readFile('/etc/passwd');
    const groupBefore = await sb.readFile('/etc/group');
    const names = new Set<string>();
    while (names.size < 1000) names.add(randomName());
    const all = [...names];
    // 300 real hook processes (what pam_exec spawns) race 700 calls of the hook's function in one
    // process: all share the one state file (2 CPUs here: 1,000 node start-ups would take minutes).
    const processNames = all.slice(0, 300);
    const inProcessNames = all.slice(300);
    fs.writeFileSync(path.join(tmp, 'process-names.json'), JSON.stringify(processNames));
    fs.writeFileSync(path.join(tmp, 'in-process-names.json'), JSON.stringify(inProcessNames));
    proxy.resetStats();
    const started = Date.now();
    const [viaProcesses, inProcess] = await Promise.all([
      sb.execOk(['node', driver, 'processes', path.join(tmp, 'process-names.json'), '3'], { timeoutMs: 150_000 }),
      sb.execOk(['node', driver, 'in-process', path.join(tmp, 'in-process-names.json'), '4'], { timeoutMs: 150_000 }),
    ]);
    const elapsedS = (Date.now() - started) / 1000;
    const codes: Record<string, number> = {};
    for (const out of [viaProcesses.stdout, inProcess.stdout]) {
      for (const [code, n] of Object.entries(JSON.parse(out) as Record<string, number>))
        codes[code] = (codes[code] ?? 0) + n;
    }
    const calls = proxy.stats();
    const asked = codes[EXIT_CODES.NO_SUCH_USER] ?? 0;
    const limited = codes[EXIT_CODES.THROTTLED] ?? 0;
    const maxLookups = PAM_GUARD_POLICY.burst + Math.ceil((elapsedS * 1000) / PAM_GUARD_POLICY.refillIntervalMs);
    console.log(
      `flood: 1000 random names in ${elapsedS.toFixed(1)} s: exit codes ${JSON.stringify(codes)}; IAM/STS requests ${calls.total} ${JSON.stringify(calls.counts)}; bound ${maxLookups} lookups x ${MAX_REQUESTS_PER_LOOKUP}`,
    );
    // Every attempt was refused: IAM said "no such user" (asked) or the rate limit said no (not asked).
    expect(asked + limited).toBe(1000);
    expect(asked).toBeLessThanOrEqual(maxLookups);
    expect(calls.total).toBeLessThanOrEqual(asked * MAX_REQUESTS_PER_LOOKUP);
    expect(calls.total).toBeLessThanOrEqual(maxLookups * MAX_REQUESTS_PER_LOOKUP);
    expect(await sb.readFile('/etc/passwd')).toBe(passwdBefore);
    expect(await sb.readFile('/etc/group')).toBe(groupBefore);
    expect(
      (await syslogLines(sb)).some((l) =>
        /create_account user="[a-z0-9]+" rhost="203\.0\.113\.9" decision=refused reason=RATE_LIMITED/.test(l),
      ),
    ).toBe(true);
    // State stays small and root-only; alice still logs in (her account exists: no IAM call from the hook).
    expect(await stat('/run/keymaker/pam-state.json')).toBe('root:root 600 regular file');
    // Her session starts the key-body worker (compat's PAM session hook), which asks IAM in the background: wait
    // for this session's decision (earlier tests' logins logged theirs) so its requests are not counted below.
    const workerDecisions = async () =>
      (await syslogLines(sb)).filter((l) => /key_bodies user="alice" decision=/.test(l)).length;
    const decisionsBefore = await workerDecisions();
    const login = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un', batch: true });
    expect(login.stdout.trim()).toBe('alice');
    let workerDone = false;
    for (let waited = 0; !workerDone && waited < 30_000; waited += 200) {
      workerDone = (await workerDecisions()) > decisionsBefore;
      if (!workerDone) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(workerDone).toBe(true);

    // A name IAM refused is remembered across processes: asking again costs nothing.
    const state = JSON.parse(await sb.readFile('/run/keymaker/pam-state.json')) as { refused: Record<string, unknown> };
    const remembered = Object.keys(state.refused);
    expect(remembered.length).toBe(asked);
    proxy.resetStats();
    expect((await hook(remembered[0]!)).code).toBe(EXIT_CODES.NO_SUCH_USER);
    expect(proxy.stats().total).toBe(0);
  });
});
