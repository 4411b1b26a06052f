// The install planner's agent mode: what it refuses, what it writes, and that uninstall's inverse of each
// edited file is the original byte for byte.
import { isKeymakerError } from '@keymaker/core';
import { agentInstallPaths } from '../src/install/agent-mode';
import { chooseInstallMode, planInstall, planUninstall, type InstallSnapshot } from '../src/install/plan';
import { insertMkhomedirSession, MKHOMEDIR_LINE, removePamHook } from '../src/install/pam';
import { DEFAULT_PATHS } from '../src/system/paths';
import type { FileState } from '../src/system/host-system';

const P = DEFAULT_PATHS;
const A = agentInstallPaths(P);
const SSHD = 'Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nKbdInteractiveAuthentication no\n';
const PAM = '@include common-auth\naccount required pam_nologin.so\n@include common-session\n';
const NSS = 'passwd:         files\ngroup:          files\nshadow:         files\nhosts: files dns\n';
const state = (content: string): FileState => ({ content: Buffer.from(content), mode: 0o644, uid: 0, gid: 0 });

function agentSnapshot(over: Partial<InstallSnapshot> = {}, nss = NSS): InstallSnapshot {
  return {
    files: { [P.sshdConfig]: state(SSHD), [P.pamSshd]: state(PAM), [A.nsswitch]: state(nss) },
    sshdConfigDirEntries: [],
    systemdRunning: false,
    userExists: false,
    existingDirs: [
      '/',
      '/etc',
      '/etc/ssh',
      '/etc/ssh/sshd_config.d',
      '/etc/pam.d',
      '/usr',
      '/usr/local',
      '/usr/local/sbin',
      '/usr/local/lib',
      '/var',
      '/var/lib',
      '/run',
    ],
    nologinShell: '/usr/sbin/nologin',
    bundle: Buffer.from('// bundle\n'),
    nssSystemdLibrary: '/lib/x86_64-linux-gnu/libnss_systemd.so.2',
    setpriv: '/usr/bin/setpriv',
    ...over,
  };
}
const options = {
  paths: P,
  user: 'keymaker',
  nodePath: '/usr/bin/node',
  force: false,
  schedule: 'auto' as const,
  mode: 'agent' as const,
};
const content = (plan: ReturnType<typeof planInstall>, p: string) =>
  plan.files.find((f) => f.path === p)?.content.toString();

function refusal(snap: InstallSnapshot): { code: string; message: string } {
  try {
    planInstall(snap, options);
  } catch (error) {
    if (isKeymakerError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('planInstall did not refuse');
}

describe('install --mode agent: planning', () => {
  test('without libnss-systemd, or with an nsswitch line that stops before systemd: refused, distinct code', () => {
    const missing = refusal(agentSnapshot({ nssSystemdLibrary: undefined }));
    expect(missing.code).toBe('AGENT_MODE_UNAVAILABLE');
    expect(missing.message).toContain('libnss-systemd is not installed');
    const blocked = refusal(agentSnapshot({}, 'passwd: files [NOTFOUND=return] ldap\ngroup: files\nshadow: files\n'));
    expect(blocked.code).toBe('AGENT_MODE_UNAVAILABLE');
    expect(blocked.message).toContain('[NOTFOUND=return]');
  });

  test('nsswitch, the keys client, the mkhomedir session line and the drop-in; no PAM hook, no schedule', () => {
    const plan = planInstall(agentSnapshot(), options);
    expect(content(plan, A.nsswitch)).toBe(
      'passwd:         files systemd\ngroup:          files systemd\nshadow:         files systemd\nhosts: files dns\n',
    );
    expect(content(plan, A.keysClient)).toMatch(/^#!\/bin\/sh\n/);
    // /etc/passwd accounts (1.x migrations) go from the keys client to the compat lookup, which stays installed.
    expect(content(plan, A.keysClient)).toContain(`\nfallback=${P.authorizedKeysCommand}\n`);
    expect(content(plan, P.authorizedKeysCommand)).toContain(' get_authorized_keys "$@"');
    expect(content(plan, P.pamSshd)).toContain(`\n${MKHOMEDIR_LINE}\n`);
    expect(content(plan, P.pamSshd)).not.toContain('pam_exec');
    const dropIn = content(plan, P.sshdDropIn)!;
    expect(dropIn).toContain(`AuthorizedKeysCommand ${A.keysClient} %u %f\nAuthorizedKeysCommandUser keymaker\n`);
    expect(dropIn.endsWith('Match Group keymaker-users\n    AuthorizedKeysFile none\n')).toBe(true);
    expect(dropIn).not.toMatch(/Kbd|AuthenticationMethods|UsePAM/);
    for (const absent of [P.pamCreateAccountCommand, P.syncGroupsCommand, P.cronFile])
      expect(content(plan, absent)).toBeUndefined();
    const kinds = plan.steps.map((s) => (s.kind === 'validate' ? s.check : s.kind));
    // The agent is up before sshd is reloaded, and the Match block is checked with sshd -T -C.
    expect(kinds.indexOf('startAgent')).toBeLessThan(kinds.indexOf('reloadSshd'));
    expect(kinds).toContain('sshdMatch');
    expect(plan.steps.find((s) => s.kind === 'writeJournal' && s.stage === 'intent')).toMatchObject({
      journal: { agent: { units: [], pidFile: A.pidFile } },
    });
  });

  test('without systemd: started unprivileged through setpriv, root making both sockets; uninstall removes them', () => {
    const plan = planInstall(agentSnapshot(), options);
    expect(plan.steps.find((s) => s.kind === 'startAgent')).toEqual({
      kind: 'startAgent',
      // The unit's node flags (the memory settings of AGENT_NODE_FLAGS).
      command: [
        '/usr/bin/node',
        '--max-semi-space-size=1',
        '--optimize-for-size',
        '--no-opt',
        P.hostBundle,
        'agent',
        '--config',
        P.configFile,
      ],
      user: 'keymaker',
      setpriv: '/usr/bin/setpriv',
      userdbSocket: A.userdbSocket,
      keysSocketGroup: 'keymaker',
      keysSocket: A.keysSocket,
      pidFile: A.pidFile,
      logFile: A.logFile,
    });
    expect(plan.warnings.join('\n')).toContain(
      'started detached (as keymaker, with CAP_KILL, its sockets made by root)',
    );
    expect(plan.warnings.join('\n')).not.toContain('as root');
    // systemd would make the socket directories; here install does, root's and writable by nobody else.
    const made = plan.steps.flatMap((s) =>
      s.kind === 'makeDirectory' ? [`${s.path} ${s.mode.toString(8)} ${s.owner}`] : [],
    );
    expect(made).toEqual(
      expect.arrayContaining(['/run/keymaker 755 root', '/run/systemd 755 root', '/run/systemd/userdb 755 root']),
    );
    const final = plan.steps.filter((s) => s.kind === 'writeJournal').pop();
    if (final?.kind !== 'writeJournal') throw new Error('no journal');
    const current = Object.fromEntries(plan.files.map((f) => [f.path, state(f.content.toString())]));
    const undo = planUninstall(final.journal, current, P, false);
    expect(undo.cleanUp.find((s) => s.kind === 'stopAgent')).toEqual({
      kind: 'stopAgent',
      pidFile: A.pidFile,
      logFile: A.logFile,
      sockets: [A.userdbSocket, A.keysSocket],
    });
    const removed = undo.cleanUp.flatMap((s) => (s.kind === 'removeDirectory' ? [s.path] : []));
    expect(removed.indexOf('/run/systemd/userdb')).toBeLessThan(removed.indexOf('/run/systemd'));
  });

  test('under systemd: the units are written and the two sockets enabled, nothing started detached', () => {
    // systemd drops the privileges itself: setpriv is not needed there.
    const plan = planInstall(agentSnapshot({ systemdRunning: true, setpriv: undefined }), options);
    expect(content(plan, A.units.service)).toContain(
      `ExecStart=/usr/bin/node --max-semi-space-size=1 --optimize-for-size --no-opt ${P.hostBundle} agent --config`,
    );
    const enabled = plan.steps.flatMap((s) => (s.kind === 'enableService' ? [s.unit] : []));
    expect(enabled).toEqual(['keymaker-agent.socket', 'keymaker-agent-keys.socket']);
    expect(plan.steps.some((s) => s.kind === 'startAgent')).toBe(false);
  });

  test('uninstall puts back nsswitch.conf and pam.d/sshd byte for byte and stops the agent', () => {
    const plan = planInstall(agentSnapshot(), options);
    const final = plan.steps.filter((s) => s.kind === 'writeJournal').pop();
    if (final?.kind !== 'writeJournal') throw new Error('no journal');
    const current = Object.fromEntries(plan.files.map((f) => [f.path, state(f.content.toString())]));
    const undo = planUninstall(final.journal, current, P, false);
    const steps = [...undo.switchOff, ...undo.cleanUp];
    const restored = (p: string) =>
      steps.flatMap((s) => (s.kind === 'restoreFile' && s.path === p ? [s.target?.content.toString()] : []));
    expect(restored(A.nsswitch)).toEqual([NSS]);
    expect(restored(P.pamSshd)).toEqual([PAM]);
    expect(steps.some((s) => s.kind === 'stopAgent')).toBe(true);
  });

  test('the mkhomedir line comes out exactly, also with a PAM file that has no final newline', () => {
    for (const text of [PAM, PAM.trimEnd(), '']) expect(removePamHook(insertMkhomedirSession(text), P).text).toBe(text);
  });
});

test('agent mode writes the sudoers drop-in and sudo.conf too, checked by visudo before and after the switch', () => {
  const snap = agentSnapshot({ sudo: { visudo: '/usr/sbin/visudo' } });
  snap.files[P.sudoers] = { ...state('root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n'), mode: 0o440 };
  snap.existingDirs.push('/etc/sudoers.d');
  const plan = planInstall(snap, options);
  expect(content(plan, P.sudoersDropIn)).toContain('%keymaker-sudo ALL=(ALL:ALL) NOPASSWD: ALL');
  expect(content(plan, P.sudoConf)).toContain('Set group_source dynamic');
  const checks = plan.steps.flatMap((s) =>
    s.kind === 'validate' ? [s.check] : s.kind === 'writeFile' ? [s.path] : [],
  );
  expect(checks.indexOf('sudoersCandidate')).toBeLessThan(checks.indexOf(P.sudoersDropIn));
  expect(checks.indexOf('sudoersLive')).toBeGreaterThan(checks.indexOf(P.sudoConf));
});

describe('install without --mode: the mode a host gets', () => {
  const auto = { ...options, mode: 'auto' as const };
  const modeOf = (snap: InstallSnapshot) => planInstall(snap, auto).mode;

  test('a new host with libnss-systemd gets agent mode, and says why', () => {
    const plan = planInstall(agentSnapshot(), auto);
    expect(plan.mode).toBe('agent');
    expect(plan.warnings).toContain('agent mode (libnss-systemd can serve IAM users here)');
    expect(chooseInstallMode(agentSnapshot(), auto)).toEqual({
      mode: 'agent',
      why: 'libnss-systemd can serve IAM users here',
    });
  });

  test('libnss-systemd missing on Debian: agent mode, with apt-get installing it before anything changes', () => {
    const installer = {
      package: 'libnss-systemd',
      argv: ['/usr/bin/apt-get', 'install', '-y', 'libnss-systemd=252.38-1~deb12u1'],
      keepFiles: [A.nsswitch],
    };
    const plan = planInstall(agentSnapshot({ nssSystemdLibrary: undefined, nssSystemdInstaller: installer }), auto);
    expect(plan.mode).toBe('agent');
    const kinds = plan.steps.map((s) => s.kind);
    // The first change: only checks before it (a dry run installs nothing), every file after it.
    const at = kinds.indexOf('installPackage');
    expect(at).toBeGreaterThan(0);
    expect(kinds.slice(0, at).every((k) => k === 'validate')).toBe(true);
    expect(plan.steps.find((s) => s.kind === 'installPackage')).toEqual({ kind: 'installPackage', ...installer });
    // Journaled from the intent on, so uninstall can say it leaves the package; a re-install keeps the record.
    const journals = plan.steps.flatMap((s) => (s.kind === 'writeJournal' ? [s.journal] : []));
    expect(journals.map((j) => j.packages)).toEqual([['libnss-systemd'], ['libnss-systemd']]);
    const again = planInstall(agentSnapshot({ journal: journals[1], bundle: Buffer.from('// bundle 2\n') }), auto);
    const rewritten = again.steps.flatMap((s) => (s.kind === 'writeJournal' ? [s.journal.packages] : []));
    expect(rewritten).toEqual([['libnss-systemd'], ['libnss-systemd']]);
    // Present already: nothing to install.
    expect(planInstall(agentSnapshot({ nssSystemdInstaller: installer }), auto).steps.map((s) => s.kind)).not.toContain(
      'installPackage',
    );
  });

  test('where agent mode cannot work, compat mode with the reason; an explicit --mode agent is refused instead', () => {
    const cases: [Partial<InstallSnapshot>, string, RegExp][] = [
      [{ nssSystemdLibrary: undefined }, NSS, /libnss-systemd is not installed/],
      [
        { nssSystemdLibrary: undefined, nssSystemdInstallProblem: 'apt-get would not install it alone' },
        NSS,
        /libnss-systemd is not installed .* and apt-get would not install it alone/,
      ],
      [
        { authselect: { problem: 'No existing configuration detected.' } },
        NSS,
        /managed by authselect and authselect current failed/,
      ],
      [
        { authselect: { current: { profile: 'sssd', features: [] }, profileNsswitch: 'shadow: files {if "x":sss}\n' } },
        NSS,
        /keymaker cannot add systemd to \("shadow: files \{if/,
      ],
      // Without systemd, setpriv is what keeps the agent from running as root.
      [{ setpriv: undefined }, NSS, /setpriv .* is not installed, so the agent could not run unprivileged/],
      [{}, 'passwd: files [NOTFOUND=return] ldap\ngroup: files\nshadow: files\n', /stops the lookup/],
    ];
    for (const [over, nss, why] of cases) {
      const plan = planInstall(agentSnapshot(over, nss), auto);
      expect(plan.mode).toBe('compat');
      expect(plan.warnings.join('\n')).toMatch(why);
      const refused = refusal(agentSnapshot(over, nss));
      expect(refused.code).toBe('AGENT_MODE_UNAVAILABLE');
      expect(refused.message).toMatch(why);
    }
  });

  test('a host installed before keeps its mode (an upgrade never switches it); --mode does', () => {
    const compatJournal = { version: 1 as const, user: { name: 'keymaker', created: true }, files: [], dirs: [] };
    expect(modeOf(agentSnapshot({ journal: compatJournal }))).toBe('compat');
    expect(modeOf(agentSnapshot({ journal: { ...compatJournal, agent: { units: [], pidFile: A.pidFile } } }))).toBe(
      'agent',
    );
    expect(planInstall(agentSnapshot({ journal: compatJournal }), options).mode).toBe('agent');
  });
});

// authselect 1.5.0's sssd profile (github.com/authselect/authselect, tag 1.5.0): systemd on passwd and group, not shadow.
const SSSD_150 = `passwd:     {if "with-tlog":sss }files {if "with-altfiles":altfiles }{if not "with-tlog":sss }systemd
shadow:     files
group:      {if "with-tlog":sss }files {if "with-altfiles":altfiles }{if not "with-tlog":sss }systemd {exclude if "with-group-merging"}
group:      {if "with-tlog":sss [SUCCESS=merge] }files [SUCCESS=merge] {if not "with-tlog":sss [SUCCESS=merge] }systemd [SUCCESS=merge] {include if "with-group-merging"}
hosts:      files dns
`;

describe('install --mode agent where authselect owns nsswitch.conf', () => {
  const auto = { ...options, mode: 'auto' as const };
  const generated = 'passwd:     files sss systemd\nshadow:     files\ngroup:      files sss systemd\n';
  const managed = (nss: string, profileNsswitch = SSSD_150) =>
    agentSnapshot({ authselect: { current: { profile: 'sssd', features: ['with-mkhomedir'] }, profileNsswitch } }, nss);

  test('the profile lists systemd on all three lines already (authselect >= 1.5.1): nothing about NSS changes', () => {
    const plan = planInstall(managed('passwd: files systemd\ngroup: files systemd\nshadow: files systemd\n'), auto);
    expect(plan.mode).toBe('agent');
    expect(plan.files.map((f) => f.path)).not.toContain(A.nsswitch);
    expect(plan.steps.map((s) => s.kind)).not.toContain('selectAuthselectProfile');
  });

  test('a line lacks systemd: custom/keymaker from the current profile, same features; uninstall selects it again', () => {
    const plan = planInstall(managed(generated), auto);
    expect(plan.mode).toBe('agent');
    // The generated file is authselect's: never written by keymaker.
    expect(plan.files.map((f) => f.path)).not.toContain(A.nsswitch);
    const step = plan.steps.find((s) => s.kind === 'selectAuthselectProfile');
    expect(step).toMatchObject({
      profile: { name: 'keymaker', baseOn: 'sssd', features: ['with-mkhomedir'], changed: ['shadow'] },
    });
    // Only the shadow line changes; the template's other lines stay byte for byte.
    const text = step?.kind === 'selectAuthselectProfile' ? step.profile.nsswitch : '';
    expect(text).toBe(SSSD_150.replace('shadow:     files\n', 'shadow:     files systemd\n'));
    const journals = plan.steps.flatMap((s) => (s.kind === 'writeJournal' ? [s.journal] : []));
    for (const j of journals)
      expect(j.authselect).toEqual({ profile: 'sssd', features: ['with-mkhomedir'], custom: 'keymaker' });
    const uninstall = planUninstall(journals[1]!, {}, P, false);
    expect(uninstall.cleanUp).toContainEqual({
      kind: 'restoreAuthselectProfile',
      previous: { profile: 'sssd', features: ['with-mkhomedir'], custom: 'keymaker' },
    });
  });

  test("authselect 1.2's profiles have no shadow line (user-nsswitch.conf gives it): the custom profile adds one", () => {
    const v126 =
      'passwd:     {if "with-files-domain":sss files|files sss} systemd   {exclude if "with-custom-passwd"}\n';
    const step = planInstall(managed(generated, v126), auto).steps.find((s) => s.kind === 'selectAuthselectProfile');
    expect(step?.kind === 'selectAuthselectProfile' && step.profile.nsswitch).toBe(
      `${v126}group:      files systemd\nshadow:     files systemd\n`,
    );
  });

  test('custom/keymaker selected already but lacking systemd: refused with the reason, nothing guessed', () => {
    const snap = agentSnapshot(
      { authselect: { current: { profile: 'custom/keymaker', features: [] }, profileNsswitch: SSSD_150 } },
      generated,
    );
    expect(planInstall(snap, auto).warnings.join('\n')).toMatch(/custom\/keymaker lacks systemd on shadow/);
  });
});
