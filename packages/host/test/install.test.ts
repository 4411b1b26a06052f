// Unit tests of the installer: the pure planners (sshd config, PAM, schedule, host config) and
// the applier against an in-memory machine (rollback, journal, uninstall).
import * as path from 'node:path';
import { isKeymakerError } from '@keymaker/core';
import { DEFAULT_PATHS, hostLoaderFiles } from '../src/system/paths';
import {
  authenticationWeakenings,
  candidateMainForDropIn,
  composeAuthenticationMethods,
  cronLinesForSyntaxCheck,
  findDropInInclude,
  insertPamHook,
  insertSshdBlock,
  appendSshdMatchBlock,
  journalPath,
  planInstall,
  runInstall,
  runUninstall,
  safePathProblem,
  sshdSettingLines,
  stripPamHook,
  sshdProbes,
  stripSshdBlock,
  type FileState,
  type HostSystem,
  type InstallRunOptions,
  type InstallSnapshot,
  type PathInfo,
  type RunResult,
  applySteps,
  planUninstall,
  summarizeStep,
} from '../src/install/index';
import { KEY_BODIES_COMMENT, keyBodiesSessionLine, removePamHook } from '../src/install/pam';

const P = DEFAULT_PATHS;

const DEBIAN_SSHD = `
# This is the sshd server system-wide configuration file.
Include /etc/ssh/sshd_config.d/*.conf

KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
Subsystem\tsftp\t/usr/lib/openssh/sftp-server
`.trimStart();

const NO_INCLUDE_SSHD = `# site config
Port 22
KbdInteractiveAuthentication no
UsePAM yes

Match User backup
  ForceCommand /usr/bin/rsync
`;

const DEBIAN_PAM = `# PAM configuration for the Secure Shell service

# Standard Un*x authentication.
@include common-auth

account    required     pam_nologin.so
@include common-account
`;

const RHEL_PAM = `#%PAM-1.0
auth       substack     password-auth
auth       include      postlogin
account    required     pam_sepermit.so
account    include      password-auth
`;

/** The directories of a fresh machine (the in-memory one, and the planner's snapshot of it). */
const MACHINE_DIRS = [
  '/',
  '/etc',
  '/etc/ssh',
  '/etc/ssh/sshd_config.d',
  '/etc/pam.d',
  '/etc/cron.d',
  '/usr',
  '/usr/bin',
  '/usr/local',
  '/usr/local/lib',
  '/usr/local/sbin',
  '/var',
  '/var/lib',
  '/run',
  '/run/sshd',
];

const file = (content: string, mode = 0o644): FileState => ({ content: Buffer.from(content), mode, uid: 0, gid: 0 });

function snapshot(over: Partial<InstallSnapshot> = {}, files: Record<string, string> = {}): InstallSnapshot {
  return {
    files: {
      [P.sshdConfig]: file(DEBIAN_SSHD),
      [P.pamSshd]: file(DEBIAN_PAM),
      ...Object.fromEntries(Object.entries(files).map(([p, c]) => [p, file(c)])),
    },
    sshdConfigDirEntries: [],
    systemdRunning: false,
    userExists: false,
    existingDirs: MACHINE_DIRS,
    nologinShell: '/usr/sbin/nologin',
    bundle: Buffer.from('// bundle\n'),
    ...over,
  };
}

const options = {
  paths: P,
  user: 'keymaker',
  nodePath: '/usr/bin/node',
  force: false,
  schedule: 'auto' as const,
  region: 'eu-west-1',
};
const planned = (plan: ReturnType<typeof planInstall>, p: string) =>
  plan.files.find((f) => f.path === p)?.content.toString();

describe('sshd config planning', () => {
  test('Debian layout (Include first): a drop-in, sshd_config untouched', () => {
    const plan = planInstall(snapshot(), options);
    expect(plan.sshd.mode).toBe('drop-in');
    expect(planned(plan, P.sshdConfig)).toBeUndefined();
    expect(planned(plan, P.sshdDropIn)).toContain(
      'AuthorizedKeysCommand /usr/local/sbin/keymaker-authorized-keys %u %f\nAuthorizedKeysCommandUser keymaker\n',
    );
    expect(planned(plan, P.sshdDropIn)).toContain('AuthenticationMethods publickey keyboard-interactive:pam,publickey');
  });

  test('no Include: the block goes before the first directive (so before every Match and before "KbdInteractiveAuthentication no")', () => {
    const plan = planInstall(
      snapshot({ files: { [P.sshdConfig]: file(NO_INCLUDE_SSHD), [P.pamSshd]: file(DEBIAN_PAM) } }),
      options,
    );
    expect(plan.sshd.mode).toBe('main-config');
    const text = planned(plan, P.sshdConfig)!;
    expect(text.startsWith('# site config\n# BEGIN keymaker')).toBe(true);
    expect(text.indexOf('KbdInteractiveAuthentication yes')).toBeLessThan(
      text.indexOf('KbdInteractiveAuthentication no'),
    );
    expect(text.indexOf('# END keymaker')).toBeLessThan(text.indexOf('Match User backup'));
    expect(stripSshdBlock(text)).toBe(NO_INCLUDE_SSHD);
    expect(appendSshdMatchBlock(insertSshdBlock(text, sshdSettingLines(P, 'keymaker')))).toBe(text);
    // The Match block for keymaker accounts goes last, in a block of its own, closed by Match all (issue 12).
    expect(
      text.endsWith(
        '# BEGIN keymaker (written by "keymaker install"; "keymaker uninstall" removes it)\nMatch Group keymaker-users\n    AuthorizedKeysFile none\nMatch all\n# END keymaker\n',
      ),
    ).toBe(true);
    expect(planned(plan, P.sshdDropIn)).toBeUndefined();
  });

  test('an Include that only a Match block reaches, or of another directory, does not count', () => {
    expect(findDropInInclude('Port 22\nMatch User x\n  Include /etc/ssh/sshd_config.d/*.conf\n', P)).toBeUndefined();
    expect(findDropInInclude('Include /etc/ssh/other.d/*.conf\n', P)).toBeUndefined();
    expect(findDropInInclude('Include /etc/ssh/sshd_config.d/*.cfg\n', P)).toBeUndefined();
    expect(findDropInInclude('include sshd_config.d/*.conf\n', P)).toMatchObject({ lineIndex: 0, matching: 0 });
    expect(findDropInInclude('Include=/etc/ssh/sshd_config.d/5?-*.conf\n', P)).toMatchObject({ matching: 0 });
  });

  test('a keymaker block left in sshd_config is removed once the Include exists', () => {
    const withBlock = insertSshdBlock(DEBIAN_SSHD, sshdSettingLines(P, 'keymaker'));
    const plan = planInstall(
      snapshot({ files: { [P.sshdConfig]: file(withBlock), [P.pamSshd]: file(DEBIAN_PAM) } }),
      options,
    );
    expect(planned(plan, P.sshdConfig)).toBe(DEBIAN_SSHD);
  });

  test('the candidate config reads the new drop-in exactly where the glob would, among the others', () => {
    const include = findDropInInclude(DEBIAN_SSHD, P)!;
    const candidate = candidateMainForDropIn(
      DEBIAN_SSHD,
      include,
      ['60-cloudimg.conf', 'README', '10-site.conf', '.hidden.conf', '50-keymaker.conf'],
      P,
      '/etc/ssh/.cand.conf',
    );
    expect(candidate.split('\n')[1]).toBe(
      'Include /etc/ssh/sshd_config.d/10-site.conf /etc/ssh/.cand.conf /etc/ssh/sshd_config.d/60-cloudimg.conf',
    );
    expect(candidate.split('\n').slice(2).join('\n')).toBe(DEBIAN_SSHD.split('\n').slice(2).join('\n'));
  });

  test('an existing AuthorizedKeysCommand is refused unless --force; keymaker\'s own is not "existing"', () => {
    const eic = '/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f';
    let error: unknown;
    try {
      planInstall(snapshot({ effectiveAuthorizedKeysCommand: eic }), options);
    } catch (e) {
      error = e;
    }
    expect(isKeymakerError(error, 'EXISTING_AUTHORIZED_KEYS_COMMAND')).toBe(true);
    expect((error as Error).message).toContain(eic);
    expect(
      planInstall(snapshot({ effectiveAuthorizedKeysCommand: eic }), { ...options, force: true }).warnings.join(),
    ).toContain('--force');
    expect(() =>
      planInstall(snapshot({ effectiveAuthorizedKeysCommand: `${P.authorizedKeysCommand} %u %f` }), options),
    ).not.toThrow();
  });

  test('bad --user and a missing sshd_config are clear errors', () => {
    expect(() => planInstall(snapshot(), { ...options, user: '-oops' })).toThrow(/invalid --user "-oops"/);
    expect(() => planInstall(snapshot({ files: { [P.pamSshd]: file(DEBIAN_PAM) } }), options)).toThrow(
      /sshd_config not found; install openssh-server/,
    );
  });
});

describe('PAM hook placement', () => {
  const line = `auth optional pam_exec.so quiet stdout ${P.pamCreateAccountCommand}`;
  test('Debian: before @include common-auth', () => {
    const out = insertPamHook(DEBIAN_PAM, P).split('\n');
    expect(out.indexOf(line)).toBe(out.indexOf('@include common-auth') - 1);
  });
  test('RHEL: before the first auth line, after #%PAM-1.0', () => {
    const out = insertPamHook(RHEL_PAM, P).split('\n');
    expect(out[0]).toBe('#%PAM-1.0');
    expect(out.indexOf(line)).toBe(out.indexOf('auth       substack     password-auth') - 1);
  });
  test('no auth line at all: appended, keeping the final newline', () => {
    expect(insertPamHook('account required pam_unix.so\n', P).endsWith(`${line}\n`)).toBe(true);
  });
  test('idempotent, and stripping gives the original bytes back', () => {
    for (const original of [DEBIAN_PAM, RHEL_PAM, 'account required pam_unix.so']) {
      const once = insertPamHook(original, P);
      expect(insertPamHook(once, P)).toBe(once);
      expect(stripPamHook(once, P)).toBe(original);
    }
  });
});

describe('compat key-body session line (issue 14)', () => {
  const session = `session optional pam_exec.so quiet type=open_session ${P.pamCreateAccountCommand}`;
  test('compat install ends pam.d/sshd with the session hook, after the stack, and the auth hook stays first', () => {
    const pam = planned(planInstall(snapshot(), options), P.pamSshd)!.split('\n');
    expect(keyBodiesSessionLine(P)).toBe(session);
    expect(pam.slice(-3)).toEqual([KEY_BODIES_COMMENT, session, '']);
    expect(pam.indexOf(`auth optional pam_exec.so quiet stdout ${P.pamCreateAccountCommand}`)).toBe(
      pam.indexOf('@include common-auth') - 1,
    );
    expect(pam.filter((line) => line === session)).toHaveLength(1);
  });
  test('removing keymaker lines gives the original back; a changed session line is removed with a note', () => {
    const installed = planned(planInstall(snapshot(), options), P.pamSshd)!;
    expect(removePamHook(installed, P)).toEqual({ text: DEBIAN_PAM, notes: [] });
    const edited = installed.replace(session, `${session} extra`);
    const removed = removePamHook(edited, P);
    expect(removed.text).toBe(DEBIAN_PAM);
    expect(removed.notes.join()).toContain('not the line keymaker wrote');
  });
  test('a second install does not add it twice', () => {
    const once = planned(planInstall(snapshot(), options), P.pamSshd)!;
    const again = planned(planInstall(snapshot({}, { [P.pamSshd]: once }), options), P.pamSshd)!;
    expect(again).toBe(once);
  });
  test('install then uninstall on a machine: the session line is there, then pam.d/sshd is the original', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    expect(m.text(P.pamSshd)).toContain(`${KEY_BODIES_COMMENT}\n${session}\n`);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.pamSshd)).toBe(DEBIAN_PAM);
  });
});

describe('schedule and host config', () => {
  test('cron.d without systemd: absolute path, root, jitter, no "%"', () => {
    const plan = planInstall(snapshot(), { ...options, syncIntervalMinutes: 10 });
    const cron = planned(plan, P.cronFile)!;
    expect(cron).toContain(`*/10 * * * * root ${P.syncGroupsCommand} --jitter 60\n`);
    expect(cron).not.toContain('%');
    expect(cronLinesForSyntaxCheck(cron).split('\n')[2]).toBe(`*/10 * * * * ${P.syncGroupsCommand} --jitter 60`);
    expect(plan.config.syncIntervalMinutes).toBe(10);
  });
  test('a systemd timer when systemd runs', () => {
    const plan = planInstall(snapshot({ systemdRunning: true }), { ...options, syncIntervalMinutes: 1 });
    expect(planned(plan, P.cronFile)).toBeUndefined();
    expect(planned(plan, path.join(P.systemdDir, 'keymaker-sync-groups.timer'))).toMatch(
      /OnCalendar=\*:0\/1\n.*RandomizedDelaySec=30\n/s,
    );
    expect(planned(plan, path.join(P.systemdDir, 'keymaker-sync-groups.service'))).toContain(
      `ExecStart=${P.syncGroupsCommand}\n`,
    );
  });
  test('--sync-interval outside 1-59 is refused', () => {
    expect(() => planInstall(snapshot(), { ...options, syncIntervalMinutes: 60 })).toThrow(
      /syncIntervalMinutes must be a whole number 1-59/,
    );
  });
  test('options win, hand edits of fields install has no option for are kept', () => {
    const existing = JSON.stringify({
      version: 1,
      region: 'us-west-2',
      preProvisionAccounts: true,
      allowedExistingGroups: ['adm'],
    });
    const plan = planInstall(snapshot({}, { [P.configFile]: existing }), {
      ...options,
      iamEndpoint: 'http://127.0.0.1:5000',
    });
    expect(plan.config).toMatchObject({
      region: 'eu-west-1',
      preProvisionAccounts: true,
      allowedExistingGroups: ['adm'],
      iamEndpoint: 'http://127.0.0.1:5000',
    });
  });
  test('wrappers exec the absolute node and the installed bundle', () => {
    const plan = planInstall(snapshot(), options);
    expect(planned(plan, P.authorizedKeysCommand)).toContain(
      `exec /usr/bin/node ${P.hostBundle} get_authorized_keys "$@"\n`,
    );
    expect(planned(plan, P.pamCreateAccountCommand)).toContain(
      `exec /usr/bin/node ${P.hostBundle} pam_create_account "$@"\n`,
    );
  });
  test('the account hook wrapper, in the session stage, starts the key-body worker detached and exits 0', () => {
    const wrapper = planned(planInstall(snapshot(), options), P.pamCreateAccountCommand)!;
    expect(wrapper).toContain(
      [
        'if [ "${PAM_TYPE:-}" = open_session ]; then',
        `  /usr/bin/node ${P.hostBundle} store_key_bodies "\${PAM_USER:-}" </dev/null >/dev/null 2>&1 &`,
        '  exit 0',
        'fi',
        `exec /usr/bin/node ${P.hostBundle} pam_create_account "$@"`,
      ].join('\n'),
    );
  });
  test('a credentials file is installed root:USER 0640 and named in the config', () => {
    const plan = planInstall(snapshot({ credentials: Buffer.from('[default]\n') }), options);
    expect(plan.files.find((f) => f.path === '/etc/keymaker/credentials')).toMatchObject({
      mode: 0o640,
      owner: 'root',
      group: 'keymaker',
    });
    expect(plan.config.sharedCredentialsFile).toBe('/etc/keymaker/credentials');
  });
});

// ---------------------------------------------------------------- an in-memory machine

interface Node_ {
  type: 'file' | 'dir';
  content: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

class FakeMachine implements HostSystem {
  nodes = new Map<string, Node_>();
  /** Symbolic links: path -> absolute target. */
  links = new Map<string, string>();
  users = new Map<string, number>();
  commands: string[] = [];
  /** argv joined -> forced result. */
  fail = new Map<string, RunResult>();
  sshdPid = 4242;
  alive = true;

  constructor() {
    for (const d of MACHINE_DIRS) {
      this.nodes.set(d, { type: 'dir', content: Buffer.alloc(0), mode: 0o755, uid: 0, gid: 0 });
    }
    this.put('/etc/ssh/sshd_config', DEBIAN_SSHD);
    this.put('/etc/pam.d/sshd', DEBIAN_PAM);
    this.put('/usr/bin/node', 'ELF', 0o755);
    this.put('/build/keymaker-host.js', '// bundle\n');
    this.put('/run/sshd.pid', '4242\n');
  }
  put(p: string, content: string, mode = 0o644) {
    this.nodes.set(p, { type: 'file', content: Buffer.from(content), mode, uid: 0, gid: 0 });
  }
  text(p: string) {
    return this.nodes.get(this.resolve(p))?.content.toString();
  }
  /** Moves the file at p to target and leaves a symlink p -> target in its place. */
  symlink(p: string, target: string) {
    this.nodes.set(target, this.nodes.get(p)!);
    this.nodes.delete(p);
    this.links.set(p, target);
  }
  resolve(p: string): string {
    for (let i = 0; i < 40 && this.links.has(p); i++) p = this.links.get(p)!;
    return p;
  }
  dump(): Record<string, string> {
    return Object.fromEntries([
      ...[...this.nodes].map(([p, n]): [string, string] => [
        p,
        `${n.type} ${n.mode.toString(8)} ${n.uid}:${n.gid} ${n.content.toString('base64')}`,
      ]),
      ...[...this.links].map(([p, t]): [string, string] => [p, `symlink ${t}`]),
    ]);
  }

  getuid = () => 0;
  readFile(p: string) {
    const n = this.nodes.get(this.resolve(p));
    return n?.type === 'file' ? { content: Buffer.from(n.content), mode: n.mode, uid: n.uid, gid: n.gid } : undefined;
  }
  stat(p: string): PathInfo | undefined {
    const n = this.nodes.get(this.resolve(p));
    return n ? { type: n.type, mode: n.mode, uid: n.uid, gid: n.gid } : undefined;
  }
  lstat(p: string): PathInfo | undefined {
    return this.links.has(p) ? { type: 'symlink', mode: 0o777, uid: 0, gid: 0 } : this.stat(p);
  }
  realpath = (p: string) => this.resolve(p);
  readdir(p: string) {
    if (this.nodes.get(p)?.type !== 'dir') return undefined;
    return [...this.nodes.keys(), ...this.links.keys()]
      .filter((k) => k !== p && path.dirname(k) === p)
      .map((k) => path.basename(k));
  }
  writeFileAtomic(p: string, content: Buffer | string, mode: number, uid: number, gid: number) {
    if (this.nodes.get(path.dirname(p))?.type !== 'dir') throw new Error(`ENOENT: ${path.dirname(p)}`);
    this.commands.push(`write ${p}`);
    if (this.fail.has(`write ${p}`)) throw new Error(`EIO: simulated write failure of ${p}`);
    this.links.delete(p); // rename(2) replaces a symlink, it does not follow it
    this.nodes.set(p, { type: 'file', content: Buffer.from(content), mode, uid, gid });
  }
  setOwnerMode(p: string, mode: number, uid: number, gid: number) {
    Object.assign(this.nodes.get(p)!, { mode, uid, gid });
  }
  mkdir(p: string, mode: number, uid: number, gid: number) {
    this.nodes.set(p, { type: 'dir', content: Buffer.alloc(0), mode, uid, gid });
  }
  removeFile(p: string) {
    if (this.links.delete(p)) return;
    if (this.nodes.get(p)?.type === 'file') this.nodes.delete(p);
  }
  removeEmptyDir(p: string) {
    if (this.readdir(p)?.length !== 0) return false;
    return this.nodes.delete(p);
  }
  removeTree(p: string) {
    for (const k of [...this.nodes.keys()]) if (k === p || k.startsWith(`${p}/`)) this.nodes.delete(k);
  }
  run(argv: string[]): RunResult {
    const cmd = argv.join(' ');
    this.commands.push(cmd);
    const forced = [...this.fail].find(([k]) => cmd.startsWith(k));
    if (forced) return forced[1];
    const [bin, ...args] = argv;
    if (bin === '/usr/sbin/sshd') {
      if (args[0] === '-T') {
        // Good enough: Include expanded (absolute paths, '*' in the last component), the first value
        // of a keyword wins, and for -C user=NAME the first value in a matching "Match User" block wins over it.
        const expand = (text: string): string[] =>
          text.split('\n').flatMap((line) => {
            const m = /^\s*include\s+(.*)$/i.exec(line);
            if (!m) return [line];
            return m[1]!.split(/\s+/).flatMap((pattern) => {
              const re = new RegExp(`^${path.basename(pattern).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`);
              const names = (this.readdir(path.dirname(pattern)) ?? [])
                .filter((n) => re.test(n) && !n.startsWith('.'))
                .sort();
              return names.length > 0 || pattern.includes('*')
                ? names.flatMap((n) => expand(this.text(path.join(path.dirname(pattern), n)) ?? ''))
                : expand(this.text(pattern) ?? '');
            });
          });
        const lines = expand(this.text(args[2] ?? P.sshdConfig) ?? '');
        const user = /(?:^|,)user=([^,]+)/.exec(args[args.indexOf('-C') + 1] ?? '')?.[1];
        const values = new Map<string, string>();
        const inMatch = new Map<string, string>();
        let match: boolean | undefined;
        for (const line of lines) {
          const m = /^\s*(\S+)\s+(.*?)\s*$/.exec(line);
          if (!m || m[1]!.startsWith('#')) continue;
          const kw = m[1]!.toLowerCase();
          if (kw === 'match') {
            const u = /^user\s+(\S+)$/i.exec(m[2]!);
            match = args.includes('-C') && !!u && u[1]!.split(',').includes(user ?? '');
            continue;
          }
          const target = match === undefined ? values : match ? inMatch : undefined;
          if (target && !target.has(kw)) target.set(kw, m[2]!);
        }
        for (const [k, v] of inMatch) values.set(k, v);
        const defaults: Record<string, string> = {
          authorizedkeyscommand: 'none',
          authorizedkeyscommanduser: 'none',
          usepam: 'no',
          kbdinteractiveauthentication: 'yes',
          passwordauthentication: 'yes',
          pubkeyauthentication: 'yes',
          permitemptypasswords: 'no',
          authenticationmethods: 'any',
        };
        return {
          code: 0,
          stdout: Object.entries(defaults)
            .map(([k, d]) => `${k} ${values.get(k) ?? d}`)
            .concat('pidfile /run/sshd.pid')
            .join('\n'),
          stderr: '',
        };
      }
      return { code: 0, stdout: '', stderr: '' };
    }
    if (bin === 'crontab' && args[0] === '-h')
      return { code: 1, stdout: '', stderr: '\t-n\t(dry run: checks the syntax, then bails out)\n' };
    if (bin === 'useradd') {
      this.users.set(argv[argv.length - 1]!, 999);
      return { code: 0, stdout: '', stderr: '' };
    }
    if (bin === 'userdel') {
      this.users.delete(argv[argv.length - 1]!);
      return { code: 0, stdout: '', stderr: '' };
    }
    return { code: 0, stdout: '', stderr: '' };
  }
  userIds(name: string) {
    const id = name === 'root' ? 0 : this.users.get(name);
    return id === undefined ? undefined : { uid: id, gid: id };
  }
  groupId(name: string) {
    return this.userIds(name)?.gid;
  }
  processAlive = (pid: number) => pid === this.sshdPid && this.alive;
  processName = (pid: number) => (pid === this.sshdPid ? 'sshd' : undefined);
  signal(pid: number, sig: string) {
    this.commands.push(`kill -${sig} ${pid}`);
  }
  sleep() {}
  private n = 0;
  randomName = () => `r${++this.n}`;
}

const runOptions: InstallRunOptions = {
  ...options,
  bundleSource: '/build/keymaker-host.js',
  sshd: '/usr/sbin/sshd',
  reload: 'auto',
  dryRun: false,
};
const uninstallOptions = { paths: P, sshd: '/usr/sbin/sshd', reload: 'auto' as const, dryRun: false };
const quiet = () => {};

describe('applier on an in-memory machine', () => {
  test('install writes everything, reloads sshd with SIGHUP, and uninstall restores the machine exactly', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    const result = runInstall(m, runOptions, quiet);
    expect(result.userCreated).toBe(true);
    expect(result.reload).toBe('reloaded sshd (SIGHUP to pid 4242 from /run/sshd.pid)');
    expect(m.text(P.sshdDropIn)).toContain('AuthorizedKeysCommandUser keymaker');
    expect(m.nodes.get(journalPath(P))).toMatchObject({ mode: 0o600, uid: 0 });
    // sshd -t on the candidate ran before the drop-in was written.
    const candidateCheck = m.commands.findIndex((c) =>
      /^\/usr\/sbin\/sshd -t -f \/etc\/ssh\/\.keymaker-candidate-/.test(c),
    );
    expect(candidateCheck).toBeGreaterThanOrEqual(0);
    expect(candidateCheck).toBeLessThan(m.commands.indexOf(`write ${P.sshdDropIn}`));
    expect([...m.nodes.keys()].filter((k) => k.includes('.keymaker-candidate-'))).toEqual([]);

    const u = runUninstall(m, uninstallOptions, quiet);
    expect(u.userRemoved).toBe(true);
    expect(m.dump()).toEqual(pristine);
    expect(m.users.has('keymaker')).toBe(false);
  });

  test('install twice == install once (same bytes, same journal); the second changes nothing', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    const once = m.dump();
    const second = runInstall(m, runOptions, quiet);
    expect(second.changed).toEqual([]);
    expect(m.dump()).toEqual(once);
  });

  test('a re-install keeps the pre-install originals, so uninstall still restores them', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    runInstall(m, runOptions, quiet);
    runInstall(m, { ...runOptions, region: 'us-east-2', syncIntervalMinutes: 7 }, quiet);
    expect(m.text(P.cronFile)).toContain('*/7 ');
    runUninstall(m, uninstallOptions, quiet);
    expect(m.dump()).toEqual(pristine);
  });

  test('a failed reload restores every file byte for byte, removes the new user, and says what failed', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    m.alive = false; // sshd dies on SIGHUP
    m.processAlive = (pid) => pid === 4242 && !m.commands.includes('kill -SIGHUP 4242');
    let error: unknown;
    try {
      runInstall(m, runOptions, quiet);
    } catch (e) {
      error = e;
    }
    expect(isKeymakerError(error, 'SYSTEM_COMMAND_FAILED')).toBe(true);
    expect((error as Error).message).toBe(
      'install failed while reloading sshd: sshd (pid 4242) exited after SIGHUP; check its log and start it again; every file was restored as it was',
    );
    expect(m.dump()).toEqual(pristine);
    expect(m.users.has('keymaker')).toBe(false);
  });

  test('a failed write half-way restores what was written before it', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    m.fail.set(`write ${P.pamSshd}`, { code: 1, stdout: '', stderr: '' });
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      `install failed while writing ${P.pamSshd}: EIO: simulated write failure of ${P.pamSshd}; every file was restored as it was`,
    );
    expect(m.dump()).toEqual(pristine);
  });

  test('sshd -t rejecting the candidate changes nothing', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    m.fail.set('/usr/sbin/sshd -t -f /etc/ssh/.keymaker-candidate-', {
      code: 255,
      stdout: '',
      stderr: '/etc/ssh/.keymaker-candidate-r1: line 3: Bad configuration option: Foo\n',
    });
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      "refusing to install: sshd -t rejects the configuration with keymaker's settings, so nothing was changed: /etc/ssh/sshd_config: line 3: Bad configuration option: Foo",
    );
    expect(m.dump()).toEqual(pristine);
    expect(m.commands.filter((c) => c.startsWith('useradd'))).toEqual([]);
  });

  test('a local user whose AuthorizedKeysFile would change, or a keymaker account whose would not be none: install is rolled back (issue 12)', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    // What a Match block swallowing later lines would look like for root.
    m.fail.set('/usr/sbin/sshd -T -C user=root,', { code: 0, stdout: 'authorizedkeysfile none\n', stderr: '' });
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      /sshd -T -C user=root shows AuthorizedKeysFile none; expected the usual files \(a local user keeps the administrator's setting\)/,
    );
    expect(m.dump()).toEqual(pristine);

    const k = new FakeMachine();
    k.put('/etc/passwd', `${k.text('/etc/passwd') ?? ''}alice:x:2000000001:2000000001::/home/alice:/bin/bash\n`);
    k.put('/etc/group', `${k.text('/etc/group') ?? ''}keymaker-users:x:990:alice\n`);
    const before = k.dump();
    k.fail.set('/usr/sbin/sshd -T -C user=alice,', {
      code: 0,
      stdout: 'authorizedkeysfile .ssh/authorized_keys\n',
      stderr: '',
    });
    expect(() => runInstall(k, runOptions, quiet)).toThrow(
      /sshd -T -C user=alice shows AuthorizedKeysFile \.ssh\/authorized_keys; expected none \(a keymaker account authenticates only through IAM\)/,
    );
    expect(k.dump()).toEqual(before);
  });

  test('a failing crontab -n dry run changes nothing', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    m.fail.set('crontab -n -', { code: 1, stdout: '', stderr: '"-":1: bad minute\n' });
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      'crontab -n rejects the group sync schedule: "-":1: bad minute',
    );
    expect(m.dump()).toEqual(pristine);
  });

  test('with systemd: the timer is enabled, uninstall disables it', () => {
    const m = new FakeMachine();
    m.mkdir('/run/systemd', 0o755, 0, 0);
    m.mkdir('/run/systemd/system', 0o755, 0, 0);
    m.mkdir('/etc/systemd', 0o755, 0, 0);
    m.mkdir('/etc/systemd/system', 0o755, 0, 0);
    runInstall(m, runOptions, quiet);
    expect(m.commands).toContain('systemctl enable --now keymaker-sync-groups.timer');
    expect(m.commands).toContain('systemctl reload ssh.service');
    runUninstall(m, uninstallOptions, quiet);
    expect(m.commands).toContain('systemctl disable --now keymaker-sync-groups.timer');
    expect(m.nodes.has('/etc/systemd/system/keymaker-sync-groups.timer')).toBe(false);
  });

  test('not root: NOT_ROOT before anything', () => {
    const m = new FakeMachine();
    m.getuid = () => 1000;
    expect(() => runInstall(m, runOptions, quiet)).toThrow(/must run as root/);
    expect(m.commands).toEqual([]);
  });

  test("uninstall after somebody edited pam.d/sshd keeps their edit and removes only keymaker's lines", () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    m.put(P.pamSshd, `${m.text(P.pamSshd)}session optional pam_motd.so\n`);
    const u = runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.pamSshd)).toBe(`${DEBIAN_PAM}session optional pam_motd.so\n`);
    expect(u.warnings.join()).toContain('edited after install');
  });

  test('uninstall with no install state is a no-op that says so', () => {
    const m = new FakeMachine();
    const lines: string[] = [];
    const u = runUninstall(m, uninstallOptions, (l) => lines.push(l));
    expect(u.nothingToDo).toBe(true);
    expect(lines).toEqual([`nothing to uninstall: no install state at ${journalPath(P)}`]);
  });

  test('uninstall refuses to reload a restored config that sshd -t rejects, and keeps keymaker in place', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    const installed = m.dump();
    m.fail.set('/usr/sbin/sshd -t', { code: 255, stdout: '', stderr: 'line 9: Bad configuration option: Typo\n' });
    expect(() => runUninstall(m, uninstallOptions, quiet)).toThrow(
      /uninstall stopped: .*Typo.*keymaker's settings are still in place/,
    );
    expect(m.dump()).toEqual(installed);
  });

  test('a stopped sshd is not an error', () => {
    const m = new FakeMachine();
    m.removeFile('/run/sshd.pid');
    expect(runInstall(m, runOptions, quiet).reload).toBe(
      'sshd is not running (no live sshd pid in /run/sshd.pid); the settings apply when it starts',
    );
  });
});

describe('the loader and its code cache (issue 14)', () => {
  const L = hostLoaderFiles(P);
  // The installed cache is named so the loader can keep it when V8 still accepts it (a second install changes nothing).
  const makeCache = `/usr/bin/env -u NODE_OPTIONS -u NODE_PATH /usr/bin/node /build/keymaker-host-loader.cjs --print-code-cache ${L.cache}`;
  const withLoader = () => {
    const m = new FakeMachine();
    m.put('/build/keymaker-host-loader.cjs', '// loader\n');
    m.put('/build/keymaker-host.cjs', '// cjs bundle\n');
    return m;
  };

  test("install copies loader and CommonJS bundle, writes the cache the wrappers' Node made, root 0644; uninstall removes them", () => {
    const m = withLoader();
    const pristine = m.dump();
    m.fail.set(makeCache, { code: 0, stdout: Buffer.from('v8 bytes').toString('base64'), stderr: '' });
    const lines: string[] = [];
    runInstall(m, runOptions, (line) => lines.push(line));
    // Made by the Node the wrappers run, without the caller's NODE_OPTIONS (V8 rejects a cache made under other flags).
    expect(m.commands).toContain(makeCache);
    expect(m.nodes.get(L.cache)).toMatchObject({ content: Buffer.from('v8 bytes'), mode: 0o644, uid: 0, gid: 0 });
    expect(m.text(L.loader)).toBe('// loader\n');
    expect(m.text(L.bundle)).toBe('// cjs bundle\n');
    for (const wrapper of [P.authorizedKeysCommand, P.pamCreateAccountCommand, P.syncGroupsCommand])
      expect(m.text(wrapper)).toContain(`exec /usr/bin/node ${L.loader} `);
    expect(lines.join('\n')).not.toMatch(/no code cache/);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.dump()).toEqual(pristine);
  });

  test('a cache that cannot be made is a warning: the wrappers still run the loader, which compiles from source', () => {
    const m = withLoader();
    m.fail.set(makeCache, { code: 1, stdout: '', stderr: 'node: bad option\n' });
    const lines: string[] = [];
    runInstall(m, runOptions, (line) => lines.push(line));
    expect(m.nodes.has(L.cache)).toBe(false);
    expect(m.text(P.authorizedKeysCommand)).toContain(`exec /usr/bin/node ${L.loader} get_authorized_keys "$@"`);
    expect(lines).toContain(
      'warning: no code cache for the host bundle (node: bad option): logins compile it each time, which is slower',
    );
  });

  test('a re-install with a cache no longer made removes the old one (no stale bytecode stays)', () => {
    const m = withLoader();
    m.fail.set(makeCache, { code: 0, stdout: Buffer.from('v8 bytes').toString('base64'), stderr: '' });
    runInstall(m, runOptions, quiet);
    m.fail.set(makeCache, { code: 1, stdout: '', stderr: 'failed' });
    runInstall(m, runOptions, quiet);
    expect(m.nodes.has(L.cache)).toBe(false);
  });

  test('a build without the loader (a bare --bundle) keeps the wrappers on the host bundle', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    expect(m.text(P.authorizedKeysCommand)).toContain(`exec /usr/bin/node ${P.hostBundle} get_authorized_keys "$@"`);
    expect(m.nodes.has(L.loader)).toBe(false);
    expect(m.commands.some((c) => c.includes('--print-code-cache'))).toBe(false);
  });
});

describe("uninstall keeps the administrator's edits (issue 13, point 9)", () => {
  const MFA = 'auth required pam_google_authenticator.so';
  /** The text with `line` inserted before the first line that starts with `before` (or appended). */
  const addBefore = (text: string, before: string, line: string) => {
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith(before));
    lines.splice(at < 0 ? lines.length - 1 : at, 0, line);
    return lines.join('\n');
  };

  test("install, edit pam.d/sshd, install again, uninstall: the edit is kept and keymaker's lines are gone", () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    m.put(P.pamSshd, addBefore(m.text(P.pamSshd)!, 'account', MFA));
    runInstall(m, runOptions, quiet);
    const u = runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.pamSshd)).toBe(addBefore(DEBIAN_PAM, 'account', MFA));
    expect(u.warnings).toEqual([]);
  });

  test("edits above and below keymaker's lines in pam.d/sshd and in sshd_config (block) survive any number of installs", () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, NO_INCLUDE_SSHD);
    m.put(P.pamSshd, RHEL_PAM);
    runInstall(m, runOptions, quiet);
    // Above keymaker's lines (before its comment / BEGIN marker) and below them.
    m.put(
      P.pamSshd,
      addBefore(
        addBefore(m.text(P.pamSshd)!, '# keymaker', 'auth required pam_faillock.so preauth'),
        'account    include',
        MFA,
      ),
    );
    m.put(P.sshdConfig, addBefore(`Banner /etc/issue.net\n${m.text(P.sshdConfig)!}`, 'Match', 'MaxAuthTries 3'));
    runInstall(m, runOptions, quiet);
    runInstall(m, { ...runOptions, region: 'us-east-2' }, quiet);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.pamSshd)).toBe(
      addBefore(addBefore(RHEL_PAM, 'auth', 'auth required pam_faillock.so preauth'), 'account    include', MFA),
    );
    expect(m.text(P.sshdConfig)).toBe(
      addBefore(`Banner /etc/issue.net\n${NO_INCLUDE_SSHD}`, 'Match', 'MaxAuthTries 3'),
    );
  });

  test('sshd_config gets an Include between two installs: uninstall keeps the Include and removes the drop-in', () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, NO_INCLUDE_SSHD);
    runInstall(m, runOptions, quiet);
    m.put(P.sshdConfig, `Include /etc/ssh/sshd_config.d/*.conf\n${m.text(P.sshdConfig)!}`);
    runInstall(m, runOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(`Include /etc/ssh/sshd_config.d/*.conf\n${NO_INCLUDE_SSHD}`);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(`Include /etc/ssh/sshd_config.d/*.conf\n${NO_INCLUDE_SSHD}`);
    expect(m.nodes.has(P.sshdDropIn)).toBe(false);
  });

  test("a line an administrator put inside keymaker's block is kept by re-install and uninstall, which say so", () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, NO_INCLUDE_SSHD);
    runInstall(m, runOptions, quiet);
    m.put(P.sshdConfig, m.text(P.sshdConfig)!.replace('# END keymaker', 'ClientAliveInterval 60\n# END keymaker'));
    const edited = m.dump();
    // Uninstall right away: the line stays where it was, and uninstall names it.
    const u = runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(NO_INCLUDE_SSHD.replace('Port 22', 'ClientAliveInterval 60\nPort 22'));
    expect(u.warnings.join('\n')).toContain('kept "ClientAliveInterval 60"');
    // Or install again first: the line moves out of the block (install names it), uninstall keeps it.
    m.nodes = new Map(
      Object.entries(edited)
        .filter(([, v]) => !v.startsWith('symlink'))
        .map(([k, v]) => {
          const [type, mode, owner, b64] = v.split(' ') as [Node_['type'], string, string, string];
          const [uid, gid] = owner.split(':').map(Number) as [number, number];
          return [k, { type, mode: parseInt(mode, 8), uid, gid, content: Buffer.from(b64 ?? '', 'base64') }];
        }),
    );
    m.users.set('keymaker', 999);
    const lines: string[] = [];
    runInstall(m, runOptions, (l) => lines.push(l));
    expect(lines.join('\n')).toContain('kept "ClientAliveInterval 60"');
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(NO_INCLUDE_SSHD.replace('Port 22', 'ClientAliveInterval 60\nPort 22'));
  });

  test("keymaker's END marker deleted by hand: uninstall removes only keymaker's lines, keeps the rest, says so", () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, NO_INCLUDE_SSHD);
    runInstall(m, runOptions, quiet);
    m.put(P.sshdConfig, m.text(P.sshdConfig)!.replace('# END keymaker\n', ''));
    const u = runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(NO_INCLUDE_SSHD);
    expect(u.warnings.join('\n')).toMatch(/END marker/);
  });

  test("keymaker's PAM line changed by hand (optional -> required): it is removed (its command is gone), the rest kept, and said", () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    m.put(
      P.pamSshd,
      addBefore(m.text(P.pamSshd)!.replace('auth optional pam_exec.so', 'auth required pam_exec.so'), 'account', MFA),
    );
    const u = runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.pamSshd)).toBe(addBefore(DEBIAN_PAM, 'account', MFA));
    expect(u.warnings.join('\n')).toContain('auth required pam_exec.so');
  });

  test('a symlinked pam.d/sshd and sshd_config stay symlinks: install writes through to the targets, uninstall restores the targets', () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, NO_INCLUDE_SSHD);
    m.mkdir('/etc/site', 0o755, 0, 0);
    m.symlink(P.pamSshd, '/etc/site/pam-sshd');
    m.symlink(P.sshdConfig, '/etc/site/sshd_config');
    const pristine = m.dump();
    runInstall(m, runOptions, quiet);
    expect(m.lstat(P.pamSshd)?.type).toBe('symlink');
    expect(m.lstat(P.sshdConfig)?.type).toBe('symlink');
    expect(m.nodes.get('/etc/site/pam-sshd')!.content.toString()).toContain(P.pamCreateAccountCommand);
    expect(m.nodes.get('/etc/site/sshd_config')!.content.toString()).toContain('# BEGIN keymaker');
    m.put('/etc/site/pam-sshd', addBefore(m.text(P.pamSshd)!, 'account', MFA));
    runInstall(m, runOptions, quiet);
    expect(m.lstat(P.pamSshd)?.type).toBe('symlink');
    runUninstall(m, uninstallOptions, quiet);
    expect(m.links.get(P.pamSshd)).toBe('/etc/site/pam-sshd');
    expect(m.links.get(P.sshdConfig)).toBe('/etc/site/sshd_config');
    expect(m.text('/etc/site/pam-sshd')).toBe(addBefore(DEBIAN_PAM, 'account', MFA));
    expect(m.text('/etc/site/sshd_config')).toBe(NO_INCLUDE_SSHD);
    const { [P.pamSshd]: _a, ['/etc/site/pam-sshd']: _b, ...rest } = m.dump();
    const { [P.pamSshd]: _c, ['/etc/site/pam-sshd']: _d, ...pristineRest } = pristine;
    expect(rest).toEqual(pristineRest);
  });

  test('a symlink whose target is not a regular file is refused with one line naming the fix, changing nothing', () => {
    const m = new FakeMachine();
    m.links.set(P.pamSshd, '/etc/pam.d/sshd.d'); // points at a directory
    m.mkdir('/etc/pam.d/sshd.d', 0o755, 0, 0);
    const pristine = m.dump();
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      /^refusing to install: \/etc\/pam\.d\/sshd is a symlink that does not lead to a regular file \(\/etc\/pam\.d\/sshd\.d\); point it at the real file/,
    );
    expect(m.dump()).toEqual(pristine);
  });
});

describe('safe-path rule', () => {
  function machineWith(dirs: Record<string, [number, number]>): FakeMachine {
    const m = new FakeMachine();
    for (const [p, [mode, uid]] of Object.entries(dirs))
      m.nodes.set(p, { type: 'dir', content: Buffer.alloc(0), mode, uid, gid: uid });
    return m;
  }
  test('a world-writable sticky parent (/tmp): names it, suggests moving, not chmod', () => {
    const m = machineWith({ '/tmp': [0o1777, 0], '/tmp/ci': [0o755, 0] });
    m.put('/tmp/ci/node', 'ELF', 0o755);
    const problem = safePathProblem(m, { path: '/tmp/ci/node', what: 'the Node binary', needOthers: 'exec' });
    expect(problem?.path).toBe('/tmp');
    expect(problem?.message).toBe(
      'refusing to install: /tmp, a parent directory of the Node binary /tmp/ci/node, is world-writable, and sshd refuses to run commands below it (its safe-path rule); install Node and keymaker under a root-owned directory such as /usr/local',
    );
  });
  test('a directory owned by somebody else: chown fix', () => {
    const m = machineWith({ '/home/u': [0o755, 1000], '/home': [0o755, 0] });
    m.put('/home/u/node', 'ELF', 0o755);
    expect(
      safePathProblem(m, { path: '/home/u/node', what: 'the Node binary', needOthers: 'exec' })?.message,
    ).toContain('is owned by uid 1000, not root');
  });
  test('a root-only directory (/root/.nvm): the lookup user could not run node', () => {
    const m = machineWith({ '/root': [0o700, 0] });
    m.put('/root/node', 'ELF', 0o755);
    expect(safePathProblem(m, { path: '/root/node', what: 'the Node binary', needOthers: 'exec' })?.message).toContain(
      '/root, a parent directory of the Node binary /root/node, is not searchable by other users (mode 700)',
    );
  });
  test('a group-writable parent: named, with the chmod fix', () => {
    const m = machineWith({ '/opt': [0o775, 0] });
    m.put('/opt/node', 'ELF', 0o755);
    expect(safePathProblem(m, { path: '/opt/node', what: 'the Node binary', needOthers: 'exec' })?.message).toBe(
      'refusing to install: /opt, a parent directory of the Node binary /opt/node, is group-writable, and sshd refuses to run commands below it (its safe-path rule); install Node and keymaker under a root-owned directory such as /usr/local, or fix with chmod go-w /opt',
    );
  });
  test('a symlink is judged by its real path', () => {
    const m = machineWith({ '/home': [0o755, 0], '/home/u': [0o755, 1000] });
    m.put('/usr/local/bin/node', 'ELF', 0o755);
    m.symlink('/usr/local/bin/node', '/home/u/node');
    expect(
      safePathProblem(m, { path: '/usr/local/bin/node', what: 'the Node binary', needOthers: 'exec' })?.message,
    ).toContain(
      '/home/u, a parent directory of the Node binary /home/u/node (real path of /usr/local/bin/node), is owned by uid 1000, not root',
    );
  });
  test('paths that do not exist yet are checked as far as they exist', () => {
    const m = new FakeMachine();
    expect(
      safePathProblem(m, {
        path: '/usr/local/lib/keymaker/keymaker-host.mjs',
        what: 'the host bundle',
        needOthers: 'read',
      }),
    ).toBeUndefined();
  });
});

describe('install never weakens authentication (issue 13, point 2)', () => {
  /** `sshd -T` output from a few settings; OpenSSH's defaults for the rest. */
  const T = (over: Record<string, string> = {}) =>
    new Map(
      Object.entries({
        usepam: 'yes',
        pubkeyauthentication: 'yes',
        passwordauthentication: 'yes',
        kbdinteractiveauthentication: 'no',
        permitemptypasswords: 'no',
        authenticationmethods: 'any',
        ...over,
      }),
    );
  const KEYMAKER = {
    kbdinteractiveauthentication: 'yes',
    authenticationmethods: 'publickey keyboard-interactive:pam,publickey',
  };
  const rows: [string, Record<string, string>, Record<string, string>, string | undefined][] = [
    ['Debian default (password or key) -> keymaker: stricter', {}, KEYMAKER, undefined],
    [
      'EC2 default (key only) -> keymaker: the hook step never stands alone',
      { passwordauthentication: 'no' },
      KEYMAKER,
      undefined,
    ],
    [
      'key + password -> keymaker 1.x value: a key alone would log in',
      { authenticationmethods: 'publickey,password' },
      KEYMAKER,
      'a login with publickey would be accepted where sshd required publickey,password',
    ],
    [
      'key + password -> composed: allowed',
      { authenticationmethods: 'publickey,password' },
      { ...KEYMAKER, authenticationmethods: 'publickey,password keyboard-interactive:pam,publickey,password' },
      undefined,
    ],
    [
      'keyboard-interactive:pam never stands in for password',
      { authenticationmethods: 'publickey,password' },
      { ...KEYMAKER, authenticationmethods: 'keyboard-interactive:pam,publickey' },
      'a login with keyboard-interactive:pam,publickey would be accepted',
    ],
    [
      'key + OTP over PAM -> composed: allowed',
      { kbdinteractiveauthentication: 'yes', authenticationmethods: 'publickey,keyboard-interactive' },
      {
        ...KEYMAKER,
        authenticationmethods: 'publickey,keyboard-interactive keyboard-interactive:pam,publickey,keyboard-interactive',
      },
      undefined,
    ],
    [
      'two keys -> one key: refused (lists are multisets)',
      { authenticationmethods: 'publickey,publickey' },
      { authenticationmethods: 'publickey' },
      'a login with publickey would be accepted where sshd required publickey,publickey',
    ],
    ['UsePAM yes -> no: refused', {}, { usepam: 'no' }, 'UsePAM would go from yes to no'],
    [
      'PasswordAuthentication no -> yes: refused',
      { passwordauthentication: 'no' },
      { passwordauthentication: 'yes' },
      'PasswordAuthentication would go from no to yes',
    ],
    [
      'PermitEmptyPasswords no -> yes: refused',
      {},
      { permitemptypasswords: 'yes' },
      'PermitEmptyPasswords would go from no to yes',
    ],
    [
      'PubkeyAuthentication off (passwords only) -> keymaker: a key alone is a new way in',
      { pubkeyauthentication: 'no' },
      { ...KEYMAKER, pubkeyauthentication: 'yes' },
      'PubkeyAuthentication is off',
    ],
    [
      'a list dormant while keyboard-interactive was off wakes up alone: refused',
      { authenticationmethods: 'publickey,password keyboard-interactive' },
      { kbdinteractiveauthentication: 'yes', authenticationmethods: 'publickey,password keyboard-interactive' },
      'set KbdInteractiveAuthentication no in that Match block',
    ],
  ];
  test.each(rows)('%s', (_name, before, after, reason) => {
    const reasons = authenticationWeakenings(T(before), T({ ...before, ...after }));
    if (reason === undefined) expect(reasons).toEqual([]);
    else expect(reasons.join('; ')).toContain(reason);
  });

  test('composition keeps every usable list of the administrator, adds the hook step in front, and is idempotent', () => {
    expect(composeAuthenticationMethods(undefined)).toBe('publickey keyboard-interactive:pam,publickey');
    expect(composeAuthenticationMethods(T())).toBe('publickey keyboard-interactive:pam,publickey');
    const composed = composeAuthenticationMethods(T({ authenticationmethods: 'publickey,password' }));
    expect(composed).toBe('publickey,password keyboard-interactive:pam,publickey,password');
    expect(
      composeAuthenticationMethods(T({ kbdinteractiveauthentication: 'yes', authenticationmethods: composed })),
    ).toBe(composed);
    // A list that cannot be used today (keyboard-interactive off) is not carried over to wake up later.
    expect(composeAuthenticationMethods(T({ authenticationmethods: 'publickey,password keyboard-interactive' }))).toBe(
      composed,
    );
    expect(stripSshdBlock(insertSshdBlock(DEBIAN_SSHD, sshdSettingLines(P, 'keymaker', composed)))).toBe(DEBIAN_SSHD);
  });

  test('probes: no Match, a user with no account, root, a plain local user, every Match User, Group member and Address', () => {
    const probes = sshdProbes(
      [
        'Port 22\nMatch User admin,!guest\n  AuthenticationMethods publickey,password\nMatch Group wheel Address 10.0.0.0/8\n  X11Forwarding no\n',
      ],
      'root:x:0:0::/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n',
      'wheel:x:10:bob,carol\n',
    );
    const specs = probes.map((p) => p.spec);
    expect(specs[0]).toBeUndefined();
    for (const u of ['keymaker-new-user', 'root', 'alice', 'admin', 'bob', 'carol'])
      expect(specs).toContain(`user=${u},host=client.example.net,addr=203.0.113.10`);
    expect(specs).toContain('user=keymaker-new-user,host=client.example.net,addr=10.0.0.0');
    expect(specs.join()).not.toContain('guest');
  });

  const ADMIN_STRICT = `${DEBIAN_SSHD}AuthenticationMethods publickey,password\n`;

  test('an AuthenticationMethods publickey,password after the Include is kept, with the hook step in front (a key alone does not log in)', () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, ADMIN_STRICT);
    const pristine = m.dump();
    runInstall(m, runOptions, quiet);
    expect(m.text(P.sshdDropIn)).toContain(
      '\nAuthenticationMethods publickey,password keyboard-interactive:pam,publickey,password\n',
    );
    expect(m.text(P.sshdConfig)).toBe(ADMIN_STRICT);
    expect(m.commands).toContain(
      `/usr/sbin/sshd -T -f /etc/ssh/.keymaker-candidate-r1 -C user=keymaker-new-user,host=client.example.net,addr=203.0.113.10`,
    );
    // Installing again composes with the administrator's value, not with keymaker's own.
    runInstall(m, runOptions, quiet);
    expect(m.text(P.sshdDropIn)).toContain(
      '\nAuthenticationMethods publickey,password keyboard-interactive:pam,publickey,password\n',
    );
    runUninstall(m, uninstallOptions, quiet);
    expect(m.dump()).toEqual(pristine);
  });

  test("no Include: the composed line is keymaker's and uninstall gives back the bytes", () => {
    const m = new FakeMachine();
    const main = `${NO_INCLUDE_SSHD.replace('Port 22\n', 'Port 22\nAuthenticationMethods publickey,password\n')}`;
    m.put(P.sshdConfig, main);
    runInstall(m, runOptions, quiet);
    expect(m.text(P.sshdConfig)).toContain('# BEGIN keymaker');
    expect(m.text(P.sshdConfig)).toContain(
      'AuthenticationMethods publickey,password keyboard-interactive:pam,publickey,password\n',
    );
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sshdConfig)).toBe(main);
  });

  test('a Match User admin block with stricter methods is respected, and probed', () => {
    const m = new FakeMachine();
    m.put(P.sshdConfig, `${DEBIAN_SSHD}Match User admin\n  AuthenticationMethods publickey,password\n`);
    runInstall(m, runOptions, quiet);
    // baseline, candidate, and the AuthorizedKeysFile check after the switch
    expect(m.commands.filter((c) => c.includes('-C user=admin,')).length).toBe(3);
    expect(m.text(P.sshdDropIn)).toContain('\nAuthenticationMethods publickey keyboard-interactive:pam,publickey\n');
  });

  test('a change that lets a Match user in with less is refused: WEAKER_AUTHENTICATION (exit 49), one line with the fix, nothing changed', () => {
    const m = new FakeMachine();
    // Dormant today (keyboard-interactive is off); keymaker turning it on would let admin in with PAM alone.
    m.put(
      P.sshdConfig,
      `${DEBIAN_SSHD}Match User admin\n  AuthenticationMethods publickey,password keyboard-interactive\n`,
    );
    const pristine = m.dump();
    let error: unknown;
    try {
      runInstall(m, runOptions, quiet);
    } catch (e) {
      error = e;
    }
    expect(isKeymakerError(error, 'WEAKER_AUTHENTICATION')).toBe(true);
    expect((error as { exitCode: number }).exitCode).toBe(49);
    const message = (error as Error).message;
    expect(message).toMatch(
      /^refusing to install: keymaker's sshd settings would weaken authentication for user admin, so nothing was changed: a login with keyboard-interactive would be accepted where sshd required publickey,password; fix: .*KbdInteractiveAuthentication no in that Match block$/,
    );
    expect(message.split('\n')).toHaveLength(1);
    expect(m.dump()).toEqual(pristine);
    expect(m.commands.filter((c) => c.startsWith('useradd'))).toEqual([]);
  });
});

describe('install as steps: the planner lists every change, the applier undoes them in reverse', () => {
  const listed = (plan: ReturnType<typeof planInstall>) =>
    plan.steps.map((s) => {
      const { kind, path: p } = summarizeStep(s);
      return p ? `${kind} ${p}` : s.kind === 'validate' ? `validate ${s.check}` : kind;
    });

  test('a fresh install: the checks, the user, the directories, the intent journal, the files (sshd last), the live check, the final journal, the reload', () => {
    expect(listed(planInstall(snapshot(), options))).toEqual([
      'validate safePaths',
      'validate sshdCandidate',
      `validate ${P.cronFile}`,
      'createSystemUser',
      'makeDirectory /etc/keymaker',
      `makeDirectory ${P.libDir}`,
      `makeDirectory ${P.stateDir}`,
      'makeDirectory /var/cache',
      `makeDirectory ${P.cacheDir}`,
      `writeJournal`,
      `writeFile ${P.configFile}`,
      `writeFile ${P.hostBundle}`,
      `writeFile ${P.authorizedKeysCommand}`,
      `writeFile ${P.pamCreateAccountCommand}`,
      `writeFile ${P.syncGroupsCommand}`,
      `writeFile ${P.cronFile}`,
      `writeFile ${P.pamSshd}`,
      `writeFile ${P.sshdDropIn}`,
      'validate sshdLive',
      'validate sshdMatch',
      'writeJournal',
      'reloadSshd',
    ]);
  });

  test('every step reads as one line, and the intent journal names every file before any is written', () => {
    const plan = planInstall(snapshot(), options);
    const lines = plan.steps.map((s) => summarizeStep(s).description);
    expect(lines).toContain('create the locked system user keymaker (shell /usr/sbin/nologin, no home)');
    expect(lines).toContain(`create the directory ${P.cacheDir} (0750 root:keymaker)`);
    expect(lines.every((l) => l.length > 0 && !l.includes('\n'))).toBe(true);
    const intent = plan.steps.find((s) => s.kind === 'writeJournal');
    expect(intent?.kind === 'writeJournal' && intent.journal.files.map((f) => f.path)).toEqual(
      plan.files.map((f) => f.path),
    );
  });

  test('an idempotent re-install plans only the checks: nothing to write, no journal, no reload', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    const again = runInstall(m, { ...runOptions, dryRun: true }, quiet);
    expect(again.plan.steps.map((s) => s.kind)).toEqual(['validate', 'validate', 'validate', 'validate', 'validate']);
    expect(again.plan.steps.map((s) => s.description).slice(-2)).toEqual([
      'check the live sshd configuration (sshd -t, sshd -T)',
      'check that AuthorizedKeysFile is none for a keymaker account and unchanged for a local one (sshd -T -C user=...)',
    ]);
  });

  test('a dry run runs the checks, lists every step and changes nothing', () => {
    const m = new FakeMachine();
    const pristine = m.dump();
    const r = runInstall(m, { ...runOptions, dryRun: true }, quiet);
    expect(r.plan.steps.map((s) => s.kind)).toContain('createSystemUser');
    expect(r.plan.steps.filter((s) => s.kind === 'writeFile')).toHaveLength(r.plan.files.length);
    expect(m.commands.some((c) => c.startsWith('/usr/sbin/sshd -t -f /etc/ssh/.keymaker-candidate-'))).toBe(true);
    expect(m.dump()).toEqual(pristine);
  });

  test('a failure in step k undoes steps k-1..1 in reverse order, and says which step failed', () => {
    const events: string[] = [];
    const steps = [1, 2, 3, 4, 5];
    const run = () =>
      applySteps(
        steps,
        {
          perform: (n) => {
            events.push(`do ${n}`);
            if (n === 4) throw new Error('boom');
            return n === 2 ? {} : { undo: () => void events.push(`undo ${n}`) };
          },
          activity: (n) => `doing ${n}`,
          changes: () => true,
        },
        'test',
      );
    expect(run).toThrow('test failed while doing 4: boom; every file was restored as it was');
    expect(events).toEqual(['do 1', 'do 2', 'do 3', 'do 4', 'undo 3', 'undo 1']);
  });

  test('a check that fails before any change is reported as it is, with nothing to undo', () => {
    const run = () =>
      applySteps(
        ['check', 'change'],
        {
          perform: (s) => {
            if (s === 'check') throw new Error('refusing to install: no');
            return {};
          },
          activity: (s) => s,
          changes: (s) => s === 'change',
        },
        'test',
      );
    expect(run).toThrow(/^refusing to install: no$/);
  });

  test('an install that loses power after any of its writes is undone by uninstall from the journal', () => {
    const full = new FakeMachine();
    runInstall(full, runOptions, quiet);
    const writes = full.commands.filter((c) => c.startsWith('write ') && !c.includes('.keymaker-candidate-'));
    expect(writes.length).toBeGreaterThanOrEqual(10);
    // The last write is the final journal: after it, install is done.
    for (let k = 1; k < writes.length; k++) {
      const m = new FakeMachine();
      const pristine = m.dump();
      const machine = {
        writeFileAtomic: m.writeFileAtomic.bind(m),
        run: m.run.bind(m),
        removeFile: m.removeFile.bind(m),
        removeEmptyDir: m.removeEmptyDir.bind(m),
      };
      let written = 0;
      let down = false;
      const powerCut = () => {
        down = true;
        throw new Error('power cut');
      };
      m.writeFileAtomic = (p, ...rest) => {
        if (down || (!p.includes('.keymaker-candidate-') && ++written > k)) powerCut();
        machine.writeFileAtomic(p, ...rest);
      };
      m.run = (argv: string[]) => (down ? powerCut() : machine.run(argv));
      m.removeFile = (p) => (down ? powerCut() : machine.removeFile(p));
      m.removeEmptyDir = (p) => (down ? powerCut() : machine.removeEmptyDir(p));
      expect(() => runInstall(m, runOptions, quiet)).toThrow(/power cut/);
      // Back on: nothing of the rollback ran; the journal on disk is all uninstall has.
      Object.assign(m, machine);
      const what = `power cut after write ${k} (${writes[k - 1]})`;
      expect({ what, journal: m.nodes.has(journalPath(P)) }).toEqual({ what, journal: true });
      runUninstall(m, uninstallOptions, quiet);
      expect({ what, machine: m.dump() }).toEqual({ what, machine: pristine });
      expect({ what, user: m.users.has('keymaker') }).toEqual({ what, user: false });
    }
  });

  test('uninstall: sshd switched off and checked first (undone as a whole), then the files with the journal shrinking, the state, the directories, the user', () => {
    const m = new FakeMachine();
    runInstall(m, runOptions, quiet);
    const journal = JSON.parse(m.text(journalPath(P))!) as Parameters<typeof planUninstall>[0];
    const current = Object.fromEntries(journal.files.map((f) => [f.path, m.readFile(f.path)]));
    const plan = planUninstall(journal, current, P, false);
    const names = (steps: typeof plan.switchOff) =>
      steps.map((s) => {
        const p = summarizeStep(s).path;
        return s.kind === 'writeJournal' ? `writeJournal ${s.journal.files.length}` : p ? `${s.kind} ${p}` : s.kind;
      });
    expect(names(plan.switchOff)).toEqual([`restoreFile ${P.sshdDropIn}`, 'validate', 'reloadSshd']);
    const files = journal.files.length;
    const others = journal.files.filter((f) => f.path !== P.sshdConfig && f.path !== P.sshdDropIn);
    expect(others).toHaveLength(files - 1); // the drop-in: sshd_config itself is not touched
    expect(names(plan.cleanUp)).toEqual([
      `writeJournal ${files - 1}`,
      ...others.flatMap((f, i) => [`restoreFile ${f.path}`, `writeJournal ${files - 2 - i}`]),
      `removeFile ${journalPath(P)}`,
      ...[...journal.dirs].reverse().map((d) => `removeDirectory ${d.path}`),
      'removeSystemUser',
    ]);
    expect(plan.untouched).toEqual([]);
  });
});

describe('sudo from the IAM group (issue 12): the sudoers drop-in and sudo.conf, in both modes', () => {
  const SUDOERS = 'Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n';
  const SUDO_CONF = '# sudo.conf\nSet disable_coredump false';
  /** A machine with sudo installed: visudo, /etc/sudoers reading /etc/sudoers.d, an admin's sudo.conf. */
  function sudoMachine(sudoers = SUDOERS, conf: string | undefined = SUDO_CONF): FakeMachine {
    const m = new FakeMachine();
    m.put('/usr/sbin/visudo', 'ELF', 0o755);
    m.nodes.set('/etc/sudoers.d', { type: 'dir', content: Buffer.alloc(0), mode: 0o755, uid: 0, gid: 0 });
    m.put(P.sudoers, sudoers, 0o440);
    if (conf !== undefined) m.put(P.sudoConf, conf);
    return m;
  }
  const logged = () => {
    const lines: string[] = [];
    return { lines, log: (l: string) => void lines.push(l) };
  };
  const sudoSteps = (steps: { kind: string; description: string; path?: string }[]) =>
    steps.filter((s) => /sudo|visudo/.test(`${s.path ?? ''} ${s.description}`)).map((s) => s.description);

  test('the drop-in (0440 root) checked by visudo -cf before the switch and the policy by visudo -c after; uninstall gives back both files byte for byte', () => {
    const m = sudoMachine();
    const pristine = m.dump();
    const result = runInstall(m, runOptions, quiet);
    expect(m.nodes.get(P.sudoersDropIn)).toMatchObject({ type: 'file', mode: 0o440, uid: 0, gid: 0 });
    expect(m.text(P.sudoersDropIn)).toContain('%keymaker-sudo ALL=(ALL:ALL) NOPASSWD: ALL\n');
    expect(m.text(P.sudoConf)!.startsWith(`${SUDO_CONF}\n`)).toBe(true);
    expect(m.text(P.sudoConf)!.split('\n')).toContain('Set group_source dynamic');
    const candidate = m.commands.findIndex((c) => /^\/usr\/sbin\/visudo -cf \/etc\/sudoers\.d\/\.keymaker-/.test(c));
    const write = m.commands.indexOf(`write ${P.sudoersDropIn}`);
    const live = m.commands.lastIndexOf('/usr/sbin/visudo -c');
    expect(candidate).toBeGreaterThanOrEqual(0);
    expect(candidate).toBeLessThan(write);
    expect(live).toBeGreaterThan(write);
    expect([...m.nodes.keys()].filter((k) => k.startsWith('/etc/sudoers.d/.'))).toEqual([]);
    expect(sudoSteps(result.plan.steps)).toEqual([
      "check keymaker's sudoers drop-in (visudo -cf on a copy)",
      expect.stringMatching(/^write \/etc\/sudoers\.d\/keymaker \(0440 root:root, \d+ bytes\)/),
      expect.stringMatching(/^update \/etc\/sudo\.conf \(0644 0:0, \d+ bytes\): sudo reads group membership/),
      'check the live sudo policy (visudo -c)',
    ]);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.dump()).toEqual(pristine);
  });

  test('a re-install plans no sudo change; a dry run lists the sudo steps and changes nothing', () => {
    const m = sudoMachine();
    const pristine = m.dump();
    const dry = runInstall(m, { ...runOptions, dryRun: true }, quiet);
    expect(sudoSteps(dry.plan.steps)).toHaveLength(4);
    expect(m.dump()).toEqual(pristine);
    runInstall(m, runOptions, quiet);
    const again = runInstall(m, { ...runOptions, dryRun: true }, quiet);
    expect(sudoSteps(again.plan.steps)).toEqual(["check keymaker's sudoers drop-in (visudo -cf on a copy)"]);
  });

  test("an administrator's own group_source stays, with a warning; a created sudo.conf is removed again", () => {
    const own = sudoMachine(SUDOERS, 'Set group_source static\n');
    const { lines, log } = logged();
    runInstall(own, runOptions, log);
    expect(own.text(P.sudoConf)).toBe('Set group_source static\n');
    expect(lines.join('\n')).toMatch(/warning: \/etc\/sudo\.conf has "Set group_source static": .*open/);

    const none = sudoMachine(SUDOERS, undefined);
    const pristine = none.dump();
    runInstall(none, runOptions, quiet);
    expect(none.text(P.sudoConf)).toContain('Set group_source dynamic');
    runUninstall(none, uninstallOptions, quiet);
    expect(none.dump()).toEqual(pristine);
  });

  test('lines an administrator added to sudo.conf after install survive uninstall', () => {
    const m = sudoMachine();
    runInstall(m, runOptions, quiet);
    m.put(P.sudoConf, `${m.text(P.sudoConf)}\nSet probe_interfaces false\n`);
    runUninstall(m, uninstallOptions, quiet);
    expect(m.text(P.sudoConf)).toBe(`${SUDO_CONF}\nSet probe_interfaces false\n`);
  });

  test.each([
    ['sudo is not installed', (m: FakeMachine) => m.nodes.delete('/usr/sbin/visudo'), /sudo is not installed/],
    [
      '/etc/sudoers has no @includedir /etc/sudoers.d',
      (m: FakeMachine) => m.put(P.sudoers, 'root ALL=(ALL:ALL) ALL\n', 0o440),
      /\/etc\/sudoers has no "@includedir \/etc\/sudoers\.d"/,
    ],
    [
      'the sudo policy is broken already',
      (m: FakeMachine) =>
        m.fail.set('/usr/sbin/visudo -c', {
          code: 1,
          stdout: '',
          stderr: '>>> /etc/sudoers: syntax error near line 2 <<<',
        }),
      /visudo -c rejects this host's sudo policy as it is \(>>> \/etc\/sudoers: syntax error/,
    ],
  ])('%s: install says so, leaves sudo alone, and installs the rest', (_what, arrange, warning) => {
    const m = sudoMachine();
    arrange(m);
    const sudoersBefore = m.text(P.sudoers);
    const { lines, log } = logged();
    runInstall(m, runOptions, log);
    expect(lines.filter((l) => l.startsWith('warning:')).join('\n')).toMatch(warning);
    expect(lines.join('\n')).toMatch(/members of keymaker_sudo_iam_group get no sudo on this host/);
    expect(m.nodes.has(P.sudoersDropIn)).toBe(false);
    expect(m.text(P.sudoConf)).toBe(SUDO_CONF);
    expect(m.text(P.sudoers)).toBe(sudoersBefore);
    expect(m.text(P.sshdDropIn)).toContain('AuthorizedKeysCommand');
  });

  test('#includedir (the older spelling) counts', () => {
    const m = sudoMachine('root ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n');
    runInstall(m, runOptions, quiet);
    expect(m.nodes.has(P.sudoersDropIn)).toBe(true);
  });

  test('visudo -cf refusing the drop-in stops install before any change', () => {
    const m = sudoMachine();
    const pristine = m.dump();
    m.fail.set('/usr/sbin/visudo -cf', { code: 1, stdout: '', stderr: 'parse error in drop-in' });
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      /visudo refused the new \/etc\/sudoers\.d\/keymaker, nothing changed: parse error/,
    );
    expect(m.dump()).toEqual(pristine);
  });

  test('visudo -c refusing the live policy after the switch rolls the whole install back', () => {
    const m = sudoMachine();
    const pristine = m.dump();
    const real = m.run.bind(m);
    let checks = 0;
    // The first `visudo -c` (the policy as it was) passes; the one after the switch fails.
    m.run = (argv: string[]) =>
      argv.join(' ') === '/usr/sbin/visudo -c' && ++checks > 1
        ? { code: 1, stdout: '', stderr: 'sudoers: alias loop' }
        : real(argv);
    expect(() => runInstall(m, runOptions, quiet)).toThrow(
      /install failed while checking the live sudo policy: visudo refused the sudo policy .*alias loop; every file was restored/,
    );
    expect(m.dump()).toEqual(pristine);
  });
});
