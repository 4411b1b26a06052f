import * as path from 'node:path';
import { planAuthselect, type AuthselectProfilePlan, type AuthselectState } from './authselect';
import { HostError, InputError, linuxNameProblem } from '@keymaker/core';
import {
  DEFAULT_EFS_HOME_BASE,
  DEFAULT_HOST_CONFIG,
  efsHomeBaseOf,
  parseHostConfig,
  serializeHostConfig,
  type HostConfig,
} from '../config/host-config';
import { insertFstabBlock, mountUnitName, planEfsMount, removeFstabBlock, type EfsMount } from './efs-mount';
import { hostLoaderFiles, type HostPaths } from '../system/paths';
import {
  journalPath,
  originalOf,
  serializeJournal,
  sha256,
  type InstallJournal,
  type JournalDir,
  type JournalFile,
} from './journal';
import { agentInstallPaths, type InstallMode } from './agent-mode';
import {
  AGENT_NODE_FLAGS,
  agentKeysSocketUnit,
  agentServiceUnit,
  agentSocketUnit,
  AGENT_KEYS_SOCKET,
  AGENT_SOCKET,
} from './agent-units';
import { addSystemdToNsswitch, type NsswitchEdit } from './nsswitch';
import {
  insertEfsHomeSession,
  insertKeyBodiesSession,
  insertMkhomedirSession,
  insertPamHook,
  removePamHook,
} from './pam';
import type { SafePathTarget } from '../system/root-owned';
import { keysClientScript } from '../agent/keys-client-script';
import { summarizeStep, type InstallStep, type InstallStepSummary, type MatchProbe } from './steps';
import {
  appendSshdMatchBlock,
  composeAuthenticationMethods,
  findDropInInclude,
  insertSshdBlock,
  KEYMAKER_AUTHENTICATION_METHODS,
  NEW_USER_PROBE,
  expectedAgentSettings,
  removeSshdBlocks,
  renderAgentSshdDropIn,
  renderSshdDropIn,
  sshdSettingLines,
  type DropInInclude,
  type SshdProbe,
} from './sshd-config';
import type { FileState } from '../system/host-system';
import {
  removeDynamicGroups,
  sudoConfWithDynamicGroups,
  sudoersDropIn,
  sudoersIncludesDir,
  type SudoOnHost,
} from './sudoers';
import {
  authorizedKeysWrapper,
  cronFile,
  efsHomeWrapper,
  pamCreateAccountWrapper,
  SYNC_TIMER,
  syncGroupsWrapper,
  systemdService,
  systemdTimer,
  systemdUnitPaths,
} from './templates';

/** What a person chose (flags, environment). */
export interface InstallOptions {
  paths: HostPaths;
  /**
   * A PEM file of extra CAs the detached agent trusts (install's NODE_EXTRA_CA_CERTS, absolute): a host behind a
   * TLS-inspecting proxy reaches IAM only with it. The agent's environment is otherwise fixed.
   */
  extraCaCerts?: string;
  /** The user sshd runs the lookup as. Default keymaker. */
  user: string;
  /** Absolute real path of the Node binary the wrappers exec. */
  nodePath: string;
  /** Replace an existing AuthorizedKeysCommand (EC2 Instance Connect...). */
  force: boolean;
  schedule: 'auto' | 'systemd' | 'cron';
  syncIntervalMinutes?: number;
  /** Agent mode: the agent's refresh (revocation) interval, seconds. */
  agentRefreshSeconds?: number;
  /** IAM users' login shell (both modes). */
  loginShell?: string;
  region?: string;
  iamEndpoint?: string;
  stsEndpoint?: string;
  deadlineMs?: number;
  profile?: string;
  /**
   * agent: NSS and keys from `keymaker agent`. compat: JIT account through PAM, group sync. auto (the default):
   * a host already installed keeps its mode; a new one gets agent mode where it can work (chooseInstallMode).
   */
  mode?: InstallMode | 'auto';
  /** FS_ID[:/PATH]: managed users' homes on this EFS file system (issue 15). */
  efsHome?: string;
}

/** How a host installs libnss-systemd: the package, the package manager's argv, the files to keep (InstallPackageStep). */
export interface NssSystemdInstaller {
  package: string;
  argv: string[];
  /** Files the package's maintainer scripts edit that the plan writes itself (libnss-systemd's postinst: nsswitch). */
  keepFiles: string[];
}

/** What is on the machine now; gathered by the applier, so planning is pure. */
export interface InstallSnapshot {
  /** Current state of every file the plan may write (undefined = missing). */
  files: Record<string, FileState | undefined>;
  /** Names in the drop-in directory (sshd_config.d). */
  sshdConfigDirEntries: string[];
  /**
   * `sshd -T` of the configuration without keymaker's lines, per probe (the first has no Match
   * applied): what install must not weaken, and the AuthenticationMethods it composes with.
   */
  baseline?: { probe: SshdProbe; settings: Map<string, string> }[];
  /** The effective AuthorizedKeysCommand from `sshd -T`, undefined for "none". */
  effectiveAuthorizedKeysCommand?: string;
  systemdRunning: boolean;
  userExists: boolean;
  /** The lookup user's uid and its group's gid when they exist (so the planner can tell a file is already as planned). */
  lookupUserIds?: { uid: number; gid: number };
  /** Which of dirsToSnapshot() exist. */
  existingDirs: string[];
  /** The shell a new lookup user gets: the first of nologin's usual places that exists. */
  nologinShell: string;
  journal?: InstallJournal;
  /** The host bundle to install (dist/keymaker-host.js). */
  bundle: Buffer;
  /**
   * The loader the wrappers run, the CommonJS bundle it loads, and that bundle's V8 code cache made
   * by the Node the wrappers run (undefined when it could not be made: the loader then compiles
   * from source). Undefined when the build has no loader (a bare --bundle): the wrappers run `bundle`.
   */
  loader?: { loader: Buffer; bundle: Buffer; codeCache?: Buffer; codeCacheProblem?: string };
  /** AWS shared credentials file to install, for hosts without an instance role. */
  credentials?: Buffer;
  /**
   * setpriv (util-linux >= 2.31, with --ambient-caps), undefined when there is none: without systemd as PID 1 it
   * is how the agent runs unprivileged with CAP_KILL (agent-launcher.ts).
   */
  setpriv?: string;
  /** Where libnss_systemd.so.2 is, undefined when it is not installed (agent mode needs it). */
  nssSystemdLibrary?: string;
  /**
   * How this host installs libnss-systemd when it is missing (Debian's apt-get, the version of the installed
   * systemd, checked with a simulation to change no other package), if it can.
   */
  nssSystemdInstaller?: NssSystemdInstaller;
  /** Why libnss-systemd cannot be installed here when it is missing and a package manager was asked. */
  nssSystemdInstallProblem?: string;
  /**
   * /etc/nsswitch.conf is authselect's (RHEL-likes): keymaker never edits it behind authselect's back, it selects a
   * custom profile instead (authselect.ts). Undefined when authselect does not manage it.
   */
  authselect?: AuthselectState;
  /** visudo and whether the sudo policy is valid as it is; undefined when sudo is not installed. */
  sudo?: SudoOnHost;
  /** amazon-efs-utils' mount.efs is installed (then the EFS share is mounted with it, over TLS). */
  efsUtils?: boolean;
  /** Members of keymaker-users in /etc/group that have an account: the managed users sshdMatch asks about. */
  managedUsers?: string[];
}

export interface PlannedFile {
  path: string;
  content: Buffer;
  mode: number;
  owner: string;
  group: string;
  kind: 'owned' | 'edited';
  purpose: string;
}

export interface PlannedDir {
  path: string;
  mode: number;
  owner: string;
  group: string;
  /** Uninstall removes it with its contents (keymaker's own cache). */
  recursive: boolean;
}

export interface InstallPlan {
  user: { name: string; create: boolean };
  dirs: PlannedDir[];
  /** In apply order: sshd last, because changing it is what switches keymaker on. */
  files: PlannedFile[];
  /** Files a previous install wrote that this one does not (restored to their originals). */
  restores: string[];
  /** authenticationMethods: what keymaker writes, composed with the administrator's (sshd-config.ts). */
  sshd: { mode: 'drop-in' | 'main-config'; include?: DropInInclude; authenticationMethods: string };
  schedule: { kind: 'systemd' | 'cron' | 'none'; timer?: string };
  mode: InstallMode;
  config: HostConfig;
  /** What sshd, PAM and the schedule run or read: checked against sshd's safe-path rule first. */
  safePathTargets: SafePathTarget[];
  /** The EFS home share, when homes live there (efs-mount.ts). */
  efsMount?: EfsMount;
  /** Agent mode where authselect owns nsswitch.conf and its lines lack systemd: the custom profile (authselect.ts). */
  authselect?: AuthselectProfilePlan;
  /** Everything install does, in order: the checks, then each change with its undo (steps.ts). */
  steps: InstallStep[];
  warnings: string[];
}

export function credentialsPath(paths: HostPaths): string {
  return path.join(path.dirname(paths.configFile), 'credentials');
}

function hostConfigFor(snapshot: InstallSnapshot, options: InstallOptions, warnings: string[]): HostConfig {
  let existing: HostConfig | undefined;
  const current = snapshot.files[options.paths.configFile];
  if (current) {
    try {
      existing = parseHostConfig(current.content.toString('utf8'), options.paths.configFile);
    } catch {
      warnings.push(`${options.paths.configFile} did not parse; it is replaced`);
    }
  }
  // Options win; what they do not mention is kept from the current config, so a re-install keeps hand edits.
  const config: HostConfig = { ...DEFAULT_HOST_CONFIG, ...existing };
  const set = <K extends keyof HostConfig>(key: K, value: HostConfig[K] | undefined) => {
    if (value !== undefined) config[key] = value;
  };
  set('region', options.region);
  set('iamEndpoint', options.iamEndpoint);
  set('stsEndpoint', options.stsEndpoint);
  set('deadlineMs', options.deadlineMs);
  set('profile', options.profile);
  set('syncIntervalMinutes', options.syncIntervalMinutes);
  set('agentRefreshSeconds', options.agentRefreshSeconds);
  set('loginShell', options.loginShell);
  set('efsHome', options.efsHome);
  config.authorizedKeysCommandUser = options.user;
  if (snapshot.credentials) config.sharedCredentialsFile = credentialsPath(options.paths);
  // Validates the whole config exactly as the lookup will read it.
  parseHostConfig(serializeHostConfig(config), 'the host config install would write');
  return config;
}

export function planInstall(snapshot: InstallSnapshot, options: InstallOptions): InstallPlan {
  const { paths, user } = options;
  const problem = linuxNameProblem(user);
  if (problem) throw new InputError('INVALID_USERNAME', `invalid --user ${JSON.stringify(user)}: ${problem}`);
  if (!path.isAbsolute(options.nodePath))
    throw new InputError('INVALID_ARGUMENT', `--node must be an absolute path, got ${options.nodePath}`);
  const warnings: string[] = [];

  const existingCommand = snapshot.effectiveAuthorizedKeysCommand;
  const agent = agentInstallPaths(paths);
  const ours = [paths.authorizedKeysCommand, agent.keysClient];
  if (existingCommand && !ours.includes(existingCommand.split(/\s+/)[0]!)) {
    if (!options.force) {
      throw new HostError(
        'EXISTING_AUTHORIZED_KEYS_COMMAND',
        `refusing to install: sshd already runs an AuthorizedKeysCommand (${existingCommand}), for example EC2 Instance Connect's; keymaker would take its place. Remove it, or run "keymaker install --force" to let keymaker's take precedence (uninstall gives it back)`,
      );
    }
    warnings.push(`replacing the AuthorizedKeysCommand ${existingCommand} (--force); uninstall restores it`);
  }

  const mainState = snapshot.files[paths.sshdConfig];
  if (!mainState)
    throw new HostError('SSHD_CONFIG_INVALID', `${paths.sshdConfig} not found; install openssh-server first`);
  const pamState = snapshot.files[paths.pamSshd];
  if (!pamState)
    throw new HostError('UNSUPPORTED_HOST', `${paths.pamSshd} not found: keymaker needs sshd built with PAM (UsePAM)`);

  const config = hostConfigFor(snapshot, options, warnings);
  const files: PlannedFile[] = [];
  const add = (p: string, content: string | Buffer, mode: number, purpose: string, extra: Partial<PlannedFile> = {}) =>
    files.push({
      path: p,
      content: Buffer.isBuffer(content) ? content : Buffer.from(content),
      mode,
      owner: 'root',
      group: 'root',
      kind: 'owned',
      purpose,
      ...extra,
    });

  add(paths.configFile, serializeHostConfig(config), 0o644, 'host config (region, endpoints, deadline)');
  const credentials = credentialsPath(paths);
  const keptCredentials =
    !snapshot.credentials && config.sharedCredentialsFile === credentials
      ? snapshot.files[credentials]?.content
      : undefined;
  const credentialBytes = snapshot.credentials ?? keptCredentials;
  if (credentialBytes) add(credentials, credentialBytes, 0o640, 'AWS credentials for the lookup', { group: user });
  add(paths.hostBundle, snapshot.bundle, 0o644, 'host bundle (lookup, PAM hook, group sync)');
  const entry = addLoader(snapshot, paths, add);
  if (snapshot.loader && !snapshot.loader.codeCache)
    warnings.push(
      `no code cache for the host bundle (${snapshot.loader.codeCacheProblem ?? 'not made'}): logins compile it each time, which is slower`,
    );
  addSudo(snapshot, paths, add, warnings);
  const efsMount = planEfsHomeFiles(snapshot, options, config, add);
  const chosen = chooseInstallMode(snapshot, options);
  if (options.mode !== chosen.mode) warnings.push(`${chosen.mode} mode (${chosen.why})`);
  if (chosen.mode === 'agent')
    return planAgentInstall(snapshot, options, { config, files, add, warnings, pamState, efsMount });
  add(
    paths.authorizedKeysCommand,
    authorizedKeysWrapper(paths, options.nodePath, entry),
    0o755,
    'AuthorizedKeysCommand',
  );
  add(
    paths.pamCreateAccountCommand,
    pamCreateAccountWrapper(paths, options.nodePath, entry),
    0o755,
    'PAM account-creation hook',
  );
  add(paths.syncGroupsCommand, syncGroupsWrapper(paths, options.nodePath, entry), 0o755, 'group sync command');

  const scheduleKind = options.schedule === 'auto' ? (snapshot.systemdRunning ? 'systemd' : 'cron') : options.schedule;
  if (scheduleKind === 'systemd' && !snapshot.systemdRunning)
    warnings.push('systemd is not running; the timer is installed but not enabled');
  if (scheduleKind === 'systemd') {
    const units = systemdUnitPaths(paths);
    add(units.service, systemdService(paths), 0o644, 'group sync service');
    add(
      units.timer,
      systemdTimer(config.syncIntervalMinutes),
      0o644,
      `group sync timer, every ${config.syncIntervalMinutes} min`,
    );
  } else {
    add(
      paths.cronFile,
      cronFile(paths, config.syncIntervalMinutes),
      0o644,
      `group sync cron job, every ${config.syncIntervalMinutes} min`,
    );
  }

  const pamText = removePamHook(pamState.content.toString('utf8'), paths);
  warnings.push(...pamText.notes.map((n) => `${paths.pamSshd}: ${n}`));
  const withHook = insertPamHook(pamText.text, paths);
  // Session lines after the stack's own: the EFS home check, then the key-body writer (both keymaker's).
  const withSessions = insertKeyBodiesSession(efsMount ? insertEfsHomeSession(withHook, paths) : withHook, paths);
  add(paths.pamSshd, withSessions, pamState.mode, 'PAM hook lines (account creation, key bodies)', {
    kind: 'edited',
    owner: String(pamState.uid),
    group: String(pamState.gid),
  });

  const authenticationMethods = composeAuthenticationMethods(snapshot.baseline?.[0]?.settings);
  if (authenticationMethods !== KEYMAKER_AUTHENTICATION_METHODS) {
    warnings.push(
      `kept sshd's AuthenticationMethods and put keymaker's account-creation step in front of each list (${authenticationMethods}): IAM users log in only if they also pass every method it requires`,
    );
    if (!authenticationMethods.split(' ').some((l) => l.split(',').includes('publickey'))) {
      warnings.push("sshd's AuthenticationMethods has no list with publickey, so IAM keys log nobody in");
    }
  }

  const mainText = mainState.content.toString('utf8');
  const include = findDropInInclude(mainText, paths);
  const mainEdit = (content: string) =>
    add(paths.sshdConfig, content, mainState.mode, 'sshd settings', {
      kind: 'edited',
      owner: String(mainState.uid),
      group: String(mainState.gid),
    });
  // An earlier install's block goes; what somebody else wrote inside it stays.
  const { text: stripped, notes } = removeSshdBlocks(mainText, paths);
  warnings.push(...notes.map((n) => `${paths.sshdConfig}: ${n}`));
  if (include) {
    if (stripped !== mainText) mainEdit(stripped); // a block left from an install before the Include existed
    add(paths.sshdDropIn, renderSshdDropIn(paths, user, authenticationMethods), 0o644, 'sshd settings (drop-in)');
  } else {
    mainEdit(appendSshdMatchBlock(insertSshdBlock(stripped, sshdSettingLines(paths, user, authenticationMethods))));
  }

  const planned = new Set(files.map((f) => f.path));
  const restores = (snapshot.journal?.files ?? []).map((f) => f.path).filter((p) => !planned.has(p));

  const dirs: PlannedDir[] = [
    ...keymakerDirs(paths, config),
    // Written by root (sync, PAM hook), read by the lookup user; nobody else.
    { path: paths.cacheDir, mode: 0o750, owner: 'root', group: user, recursive: true },
  ];

  const safePathTargets: SafePathTarget[] = [
    ...commonSafePathTargets(options),
    { path: paths.authorizedKeysCommand, what: 'the AuthorizedKeysCommand', needOthers: 'exec' },
    { path: paths.pamCreateAccountCommand, what: 'the PAM hook', needOthers: 'none' },
    { path: paths.syncGroupsCommand, what: 'the group sync command', needOthers: 'none' },
    ...(efsMount ? [{ path: paths.efsHomeCommand, what: 'the EFS home hook', needOthers: 'none' as const }] : []),
  ];

  const plan: Omit<InstallPlan, 'steps'> = {
    user: { name: user, create: !snapshot.userExists },
    dirs,
    files,
    restores,
    sshd: { mode: include ? 'drop-in' : 'main-config', include, authenticationMethods },
    schedule: { kind: scheduleKind, timer: scheduleKind === 'systemd' ? SYNC_TIMER : undefined },
    mode: 'compat',
    config,
    safePathTargets,
    warnings,
    ...(efsMount ? { efsMount } : {}),
  };
  return { ...plan, steps: installSteps(snapshot, options, plan) };
}

interface AgentPlanParts {
  config: HostConfig;
  files: PlannedFile[];
  add: (p: string, content: string | Buffer, mode: number, purpose: string, extra?: Partial<PlannedFile>) => void;
  warnings: string[];
  pamState: FileState;
  efsMount?: EfsMount;
}

/**
 * sudo for the members of keymaker_sudo_iam_group, in both modes (sudoers.ts): the drop-in naming the Linux group
 * keymaker-sudo (empty, so granting nothing, until the role names a sudo IAM group), and group_source dynamic in
 * sudo.conf. Only where it can work; otherwise a warning says why and sudo is left as it is.
 */
function addSudo(snapshot: InstallSnapshot, paths: HostPaths, add: AgentPlanParts['add'], warnings: string[]): void {
  const why = 'members of keymaker_sudo_iam_group get no sudo on this host';
  const sudo = snapshot.sudo;
  if (!sudo) {
    warnings.push(`sudo is not installed (no visudo): ${why}; install sudo, then run keymaker install again`);
    return;
  }
  if (sudo.policyProblem) {
    warnings.push(
      `visudo -c rejects this host's sudo policy as it is (${sudo.policyProblem}): keymaker leaves sudo alone and ${why}; fix the policy, then run keymaker install again`,
    );
    return;
  }
  const dir = path.dirname(paths.sudoersDropIn);
  if (!sudoersIncludesDir(snapshot.files[paths.sudoers]?.content.toString('utf8') ?? '', dir)) {
    warnings.push(
      `${paths.sudoers} has no "@includedir ${dir}", so sudo would never read keymaker's drop-in: ${why}; add that line (visudo), then run keymaker install again`,
    );
    return;
  }
  add(paths.sudoersDropIn, sudoersDropIn(), 0o440, 'sudo for the members of keymaker_sudo_iam_group (keymaker-sudo)');
  const conf = snapshot.files[paths.sudoConf];
  // An earlier install's line goes first, so a re-install plans the same bytes and an admin's own setting wins.
  const edit = sudoConfWithDynamicGroups(
    removeDynamicGroups(conf?.content.toString('utf8') ?? '').text,
    paths.sudoConf,
  );
  if (edit.note) warnings.push(edit.note);
  if (edit.changed)
    add(
      paths.sudoConf,
      edit.text,
      conf?.mode ?? 0o644,
      'sudo reads group membership at each call (group_source dynamic)',
      {
        kind: 'edited',
        owner: String(conf?.uid ?? 0),
        group: String(conf?.gid ?? 0),
      },
    );
}

/** The directories both modes install: config, bundle, install state, and the EFS mount point. */
function keymakerDirs(paths: HostPaths, config: HostConfig): PlannedDir[] {
  const efsBase = efsHomeBaseOf(config);
  return [
    { path: path.dirname(paths.configFile), mode: 0o755, owner: 'root', group: 'root', recursive: false },
    { path: paths.libDir, mode: 0o755, owner: 'root', group: 'root', recursive: false },
    { path: paths.stateDir, mode: 0o700, owner: 'root', group: 'root', recursive: false },
    ...(efsBase ? [{ path: efsBase, mode: 0o755, owner: 'root', group: 'root', recursive: false }] : []),
  ];
}

/**
 * Homes on EFS: the mount (a systemd unit, or keymaker's block in fstab, edited in place and taken out again on
 * uninstall) and the session hook's wrapper. The hook line itself goes in with each mode's PAM edit.
 */
function planEfsHomeFiles(
  snapshot: InstallSnapshot,
  options: InstallOptions,
  config: HostConfig,
  add: AgentPlanParts['add'],
): EfsMount | undefined {
  const base = efsHomeBaseOf(config);
  if (!config.efsHome || !base) return undefined;
  const { paths } = options;
  const mount = planEfsMount({
    efsHome: config.efsHome,
    mountPoint: base,
    region: config.region,
    efsUtils: !!snapshot.efsUtils,
    systemd: snapshot.systemdRunning,
    systemdDir: paths.systemdDir,
  });
  if (mount.unit) {
    add(mount.unit.path, mount.unit.text, 0o644, `EFS home share mount unit (${mount.what})`);
  } else {
    const fstab = snapshot.files[paths.fstab];
    add(
      paths.fstab,
      insertFstabBlock(fstab?.content.toString('utf8') ?? '', mount.fstabLine!),
      fstab?.mode ?? 0o644,
      `EFS home share mount line (${mount.what})`,
      { kind: 'edited', owner: String(fstab?.uid ?? 0), group: String(fstab?.gid ?? 0) },
    );
  }
  add(
    paths.efsHomeCommand,
    efsHomeWrapper(paths, options.nodePath, snapshot.loader ? hostLoaderFiles(paths).loader : paths.hostBundle),
    0o755,
    'PAM session hook (homes on EFS)',
  );
  return mount;
}

/**
 * The loader, its CommonJS bundle and that bundle's code cache, when the build has them; returns
 * what the wrappers run. Without a cache (it could not be made) the loader compiles from source.
 */
function addLoader(snapshot: InstallSnapshot, paths: HostPaths, add: AgentPlanParts['add']): string {
  if (!snapshot.loader) return paths.hostBundle;
  const files = hostLoaderFiles(paths);
  add(files.loader, snapshot.loader.loader, 0o644, 'host loader (runs the host bundle with its code cache)');
  add(files.bundle, snapshot.loader.bundle, 0o644, 'host bundle, CommonJS (what the loader runs)');
  if (snapshot.loader.codeCache)
    add(files.cache, snapshot.loader.codeCache, 0o644, "host bundle's V8 code cache (root-owned: trusted)");
  return files.loader;
}

/** What sshd runs or reads in both modes, for the safe-path check; each mode adds its commands. */
function commonSafePathTargets(options: InstallOptions): SafePathTarget[] {
  return [
    { path: options.nodePath, what: 'the Node binary', needOthers: 'exec' },
    { path: options.paths.hostBundle, what: 'the host bundle', needOthers: 'read' },
    { path: hostLoaderFiles(options.paths).loader, what: 'the host loader', needOthers: 'read' },
    { path: hostLoaderFiles(options.paths).bundle, what: 'the host bundle', needOthers: 'read' },
    { path: options.paths.configFile, what: 'the host config', needOthers: 'read' },
  ];
}

/**
 * Whether agent mode can work on this host (pure: from the snapshot): the reason it cannot, or what planning it
 * needs and has already worked out (the nsswitch edit and sshd_config's Include), so nothing is computed twice.
 */
export function agentModeFit(
  snapshot: InstallSnapshot,
  paths: HostPaths,
):
  | { problem: string }
  | { problem?: undefined; edit: NsswitchEdit; include: DropInInclude; authselect?: AuthselectProfilePlan } {
  if (!snapshot.nssSystemdLibrary && !snapshot.nssSystemdInstaller)
    return {
      problem: `libnss-systemd is not installed (no libnss_systemd.so.2 under /lib*/ or /usr/lib*/) and ${
        snapshot.nssSystemdInstallProblem ?? 'this host has no apt-get to install it'
      }; install it (systemd >= 245)`,
    };
  // Never as root instead: without systemd to make the sockets and drop privileges, setpriv does the latter.
  if (!snapshot.systemdRunning && !snapshot.setpriv)
    return {
      problem:
        'systemd is not PID 1 and setpriv (util-linux >= 2.31, with --ambient-caps) is not installed, so the agent could not run unprivileged; install util-linux',
    };
  const nsswitchPath = agentInstallPaths(paths).nsswitch;
  const nsswitchText = snapshot.files[nsswitchPath]?.content.toString('utf8') ?? '';
  let authselect: AuthselectProfilePlan | undefined;
  if (snapshot.authselect) {
    const fit = planAuthselect(snapshot.authselect, nsswitchText, nsswitchPath);
    if (fit.problem !== undefined) return { problem: fit.problem };
    authselect = fit.profile;
  }
  // With authselect the generated file is never written: the profile (or nothing) changes it.
  const edit = snapshot.authselect
    ? { text: nsswitchText, changed: [], blocked: [] }
    : addSystemdToNsswitch(nsswitchText);
  if (edit.blocked.length > 0)
    return {
      problem: `${nsswitchPath} stops the lookup before systemd could be asked (${edit.blocked.map((b) => JSON.stringify(b.line)).join(', ')})`,
    };
  const include = findDropInInclude(snapshot.files[paths.sshdConfig]?.content.toString('utf8') ?? '', paths);
  if (!include)
    return {
      problem: `${paths.sshdConfig} has no Include of ${paths.sshdConfigDir}/*.conf (agent mode's Match block must end its own file)`,
    };
  return { edit, include, ...(authselect ? { authselect } : {}) };
}

/**
 * The mode an install gets. An explicit --mode wins. Otherwise a host keymaker already installed keeps its mode
 * (an upgrade never switches a fleet's hosts under it; --mode does), and a new host gets agent mode where it can
 * work here, else compat mode with the reason.
 */
export function chooseInstallMode(
  snapshot: InstallSnapshot,
  options: Pick<InstallOptions, 'mode' | 'paths'>,
): { mode: InstallMode; why: string } {
  if (options.mode === 'agent' || options.mode === 'compat') return { mode: options.mode, why: '--mode' };
  if (snapshot.journal)
    return snapshot.journal.agent
      ? { mode: 'agent', why: 'installed in agent mode before' }
      : { mode: 'compat', why: 'installed in compat mode before; --mode agent switches' };
  const { problem } = agentModeFit(snapshot, options.paths);
  return problem === undefined
    ? { mode: 'agent', why: 'libnss-systemd can serve IAM users here' }
    : { mode: 'compat', why: `agent mode cannot work here: ${problem}` };
}

const agentUnavailable = (why: string) =>
  new HostError(
    'AGENT_MODE_UNAVAILABLE',
    `refusing --mode agent: ${why}; nothing was changed (--mode compat works here)`,
  );

/**
 * Agent mode: nsswitch gets `systemd` (journaled, restored byte for byte), the keys client is the
 * AuthorizedKeysCommand, pam_mkhomedir makes the home in the session stage, and the agent serves both
 * (socket units under systemd, else started detached). No PAM account hook, no group sync schedule, and
 * sshd's authentication settings are left as they are.
 */
function planAgentInstall(snapshot: InstallSnapshot, options: InstallOptions, parts: AgentPlanParts): InstallPlan {
  const { paths, user } = options;
  const { config, files, add, warnings, pamState, efsMount } = parts;
  const agent = agentInstallPaths(paths);
  const fit = agentModeFit(snapshot, paths);
  if (fit.problem !== undefined) throw agentUnavailable(fit.problem);
  const { edit, include, authselect } = fit;
  const nsswitch = snapshot.files[agent.nsswitch];
  const mainState = snapshot.files[paths.sshdConfig]!;
  const mainText = mainState.content.toString('utf8');

  // The compat lookup stays installed: the keys client hands it /etc/passwd accounts (1.x migrations).
  add(
    paths.authorizedKeysCommand,
    authorizedKeysWrapper(paths, options.nodePath, snapshot.loader ? hostLoaderFiles(paths).loader : paths.hostBundle),
    0o755,
    'compat lookup (local accounts)',
  );
  add(
    agent.keysClient,
    keysClientScript(paths.authorizedKeysCommand),
    0o755,
    'AuthorizedKeysCommand (asks the agent; local accounts go to the compat lookup)',
  );
  // 'owned': uninstall puts back the original bytes from the journal, not a reversed edit.
  if (edit.text !== (nsswitch?.content.toString('utf8') ?? ''))
    add(
      agent.nsswitch,
      edit.text,
      nsswitch?.mode ?? 0o644,
      `NSS asks the agent (systemd on ${edit.changed.join(', ')})`,
      {
        owner: String(nsswitch?.uid ?? 0),
        group: String(nsswitch?.gid ?? 0),
      },
    );
  const pamText = removePamHook(pamState.content.toString('utf8'), paths);
  warnings.push(...pamText.notes.map((n) => `${paths.pamSshd}: ${n}`));
  // Homes on EFS: keymaker's hook makes the home (as the user, under root squash) instead of pam_mkhomedir.
  const session = efsMount ? insertEfsHomeSession(pamText.text, paths) : insertMkhomedirSession(pamText.text);
  add(paths.pamSshd, session, pamState.mode, `PAM session line (${efsMount ? 'EFS home hook' : 'pam_mkhomedir'})`, {
    kind: 'edited',
    owner: String(pamState.uid),
    group: String(pamState.gid),
  });
  if (snapshot.systemdRunning) {
    const unitOptions = {
      nodePath: options.nodePath,
      agentEntry: paths.hostBundle,
      configFile: paths.configFile,
      user,
      userdbSocket: agent.userdbSocket,
      keysSocket: agent.keysSocket,
      keysSocketGroup: user,
    };
    add(agent.units.socket, agentSocketUnit(unitOptions), 0o644, 'agent userdb socket unit');
    add(agent.units.keysSocket, agentKeysSocketUnit(unitOptions), 0o644, 'agent keys socket unit');
    add(agent.units.service, agentServiceUnit(unitOptions), 0o644, 'agent service unit');
  } else {
    warnings.push(
      `systemd is not PID 1: the agent is started detached (as ${user}, with CAP_KILL, its sockets made by root) and nothing restarts it if it stops`,
    );
  }
  // An earlier compat install's block in sshd_config goes; the drop-in is replaced whole.
  const { text: stripped, notes } = removeSshdBlocks(mainText, paths);
  warnings.push(...notes.map((n) => `${paths.sshdConfig}: ${n}`));
  if (stripped !== mainText)
    add(paths.sshdConfig, stripped, mainState.mode, 'sshd settings', {
      kind: 'edited',
      owner: String(mainState.uid),
      group: String(mainState.gid),
    });
  add(paths.sshdDropIn, renderAgentSshdDropIn(agent.keysClient, user), 0o644, 'sshd settings (agent mode drop-in)');

  const planned = new Set(files.map((f) => f.path));
  const restores = (snapshot.journal?.files ?? []).map((f) => f.path).filter((p) => !planned.has(p));
  const dirs: PlannedDir[] = [...keymakerDirs(paths, config)];
  // The detached agent's socket directories (systemd makes them otherwise): root's, writable by nobody else, so
  // nobody can swap a socket. The userdb one is not recursive: uninstall leaves it if someone else put a socket there.
  if (!snapshot.systemdRunning)
    dirs.push(
      { path: path.dirname(agent.keysSocket), mode: 0o755, owner: 'root', group: 'root', recursive: true },
      { path: path.dirname(agent.userdbSocket), mode: 0o755, owner: 'root', group: 'root', recursive: false },
    );
  const safePathTargets: SafePathTarget[] = [
    ...commonSafePathTargets(options),
    { path: agent.keysClient, what: 'the AuthorizedKeysCommand', needOthers: 'exec' },
    {
      path: paths.authorizedKeysCommand,
      what: 'the compat lookup the keys client hands local accounts',
      needOthers: 'exec',
    },
    ...(efsMount ? [{ path: paths.efsHomeCommand, what: 'the EFS home hook', needOthers: 'none' as const }] : []),
  ];
  const plan: Omit<InstallPlan, 'steps'> = {
    user: { name: user, create: !snapshot.userExists },
    dirs,
    files,
    restores,
    sshd: {
      mode: 'drop-in',
      include,
      authenticationMethods: snapshot.baseline?.[0]?.settings.get('authenticationmethods') ?? 'any',
    },
    schedule: { kind: 'none' },
    mode: 'agent',
    config,
    safePathTargets,
    warnings,
    ...(efsMount ? { efsMount } : {}),
    ...(authselect ? { authselect } : {}),
  };
  return { ...plan, steps: installSteps(snapshot, options, plan) };
}

const isSshdPath = (paths: HostPaths, p: string) => p === paths.sshdConfig || p === paths.sshdDropIn;

type IdOf = (name: string) => number | undefined;

function sameFile(a: FileState | undefined, f: PlannedFile, uidOf: IdOf, gidOf: IdOf): boolean {
  return (
    !!a && a.content.equals(f.content) && a.mode === f.mode && a.uid === uidOf(f.owner) && a.gid === gidOf(f.group)
  );
}

/**
 * The plan as steps. Checks first (they change nothing; a dry run runs them too), then the user,
 * the directories, the install state naming everything that follows (an intent log: uninstall
 * undoes a crashed run from it), the files (sshd last: that is the switch), the live check, the
 * schedule, the final install state, and the sshd reload last, because nothing may fail after it.
 */
function installSteps(snapshot: InstallSnapshot, options: InstallOptions, plan: Omit<InstallPlan, 'steps'>) {
  const { paths, user } = options;
  const steps: InstallStep[] = [];
  const planned = (p: string) => plan.files.find((f) => f.path === p);
  const agentPaths = agentInstallPaths(paths);
  const expected = plan.mode === 'agent' ? expectedAgentSettings(agentPaths.keysClient, user) : undefined;

  steps.push({ kind: 'validate', check: 'safePaths', targets: plan.safePathTargets });
  const dropIn = planned(paths.sshdDropIn);
  steps.push({
    kind: 'validate',
    check: 'sshdCandidate',
    mainText: (planned(paths.sshdConfig)?.content ?? snapshot.files[paths.sshdConfig]!.content).toString('utf8'),
    dropIn: plan.sshd.include && dropIn ? { content: dropIn.content, include: plan.sshd.include } : undefined,
    sshdConfigDirEntries: snapshot.sshdConfigDirEntries,
    user,
    authenticationMethods: plan.sshd.authenticationMethods,
    baseline: snapshot.baseline ?? [],
    ...(expected ? { expected } : {}),
  });
  const cron = planned(paths.cronFile);
  if (cron) steps.push({ kind: 'validate', check: 'cronSyntax', path: cron.path, content: cron.content.toString() });
  const sudoers = planned(paths.sudoersDropIn);
  const visudo = snapshot.sudo?.visudo;
  if (sudoers && visudo)
    steps.push({ kind: 'validate', check: 'sudoersCandidate', visudo, path: sudoers.path, content: sudoers.content });

  const installer = plan.mode === 'agent' && !snapshot.nssSystemdLibrary ? snapshot.nssSystemdInstaller : undefined;
  if (installer) steps.push({ kind: 'installPackage', ...installer });
  if (plan.authselect) steps.push({ kind: 'selectAuthselectProfile', profile: plan.authselect });
  if (plan.user.create)
    steps.push({
      kind: 'createSystemUser',
      name: user,
      shell: snapshot.nologinShell,
      comment: 'Keymaker SSH key lookup',
    });

  // Directories, parents first; each one created is recorded, so uninstall removes it again.
  const previous = snapshot.journal;
  const existing = new Set(snapshot.existingDirs);
  const newDirs: JournalDir[] = [];
  const ensureDir = (d: PlannedDir) => {
    if (existing.has(d.path)) return;
    ensureDir({ path: path.dirname(d.path), mode: 0o755, owner: 'root', group: 'root', recursive: false });
    existing.add(d.path);
    steps.push({ kind: 'makeDirectory', path: d.path, mode: d.mode, owner: d.owner, group: d.group });
    newDirs.push({ path: d.path, recursive: d.recursive });
  };
  for (const d of plan.dirs) ensureDir(d);
  for (const f of plan.files)
    ensureDir({ path: path.dirname(f.path), mode: 0o755, owner: 'root', group: 'root', recursive: false });

  const previousEntry = new Map((previous?.files ?? []).map((f) => [f.path, f]));
  const journalFiles = plan.files.map((f): JournalFile => ({
    path: f.path,
    // null ("did not exist") from the first install must survive a re-install
    original: previousEntry.has(f.path) ? previousEntry.get(f.path)!.original : originalOf(snapshot.files[f.path]),
    installedSha256: sha256(f.content),
    kind: f.kind,
  }));
  const pendingRestores = plan.restores.map((p) => previousEntry.get(p)!);
  // In the intent already, so uninstall stops an agent a crashed run started.
  const plannedAgent: InstallJournal['agent'] =
    plan.mode !== 'agent'
      ? previous?.agent
      : snapshot.systemdRunning
        ? { units: [AGENT_SOCKET, AGENT_KEYS_SOCKET] }
        : { units: [], pidFile: agentPaths.pidFile };
  // The share, in the intent already: uninstall unmounts what a crashed run mounted.
  const plannedEfs: InstallJournal['efsMount'] = plan.efsMount
    ? { mountPoint: plan.efsMount.where, ...(plan.efsMount.unit ? { unit: plan.efsMount.unit.name } : {}) }
    : previous?.efsMount;
  // In the intent already, so uninstall gives back the previous profile after a crashed run too.
  const plannedAuthselect: InstallJournal['authselect'] = plan.authselect
    ? { profile: plan.authselect.baseOn, features: plan.authselect.features, custom: plan.authselect.name }
    : previous?.authselect;
  // Kept across re-installs, so uninstall still says which package keymaker added.
  const packages = [...new Set([...(previous?.packages ?? []), ...(installer ? [installer.package] : [])])];
  const intent: InstallJournal = {
    version: 1,
    user: { name: user, created: (previous?.user.name === user && previous.user.created) || plan.user.create },
    files: [...journalFiles, ...pendingRestores],
    dirs: [...(previous?.dirs ?? []), ...newDirs.filter((d) => !previous?.dirs.some((p) => p.path === d.path))],
    systemdTimer: previous?.systemdTimer,
    ...(plannedAgent ? { agent: plannedAgent } : {}),
    ...(plannedEfs ? { efsMount: plannedEfs } : {}),
    ...(packages.length > 0 ? { packages } : {}),
    ...(plannedAuthselect ? { authselect: plannedAuthselect } : {}),
  };
  const unchanged = (j: InstallJournal) => !!previous && serializeJournal(j) === serializeJournal(previous);
  if (!unchanged(intent)) steps.push({ kind: 'writeJournal', stage: 'intent', journal: intent });

  // Owners are names until the applier resolves them; the lookup user's are known once it exists.
  const idOf =
    (lookup: number | undefined): IdOf =>
    (name) =>
      /^\d+$/.test(name) ? Number(name) : name === 'root' ? 0 : name === user ? lookup : undefined;
  const uidOf = idOf(snapshot.lookupUserIds?.uid);
  const gidOf = idOf(snapshot.lookupUserIds?.gid);
  let sshdChanges = false;
  let sudoChanges = false;
  const isSudoPath = (p: string) => p === paths.sudoersDropIn || p === paths.sudoConf;
  for (const f of plan.files) {
    const before = snapshot.files[f.path];
    if (sameFile(before, f, uidOf, gidOf)) continue;
    sshdChanges ||= isSshdPath(paths, f.path);
    sudoChanges ||= isSudoPath(f.path);
    steps.push({
      kind: 'writeFile',
      path: f.path,
      content: f.content,
      mode: f.mode,
      owner: f.owner,
      group: f.group,
      purpose: f.purpose,
      writeThrough: f.kind === 'edited',
      existed: !!before,
    });
  }
  for (const entry of pendingRestores) {
    const undo = undoJournalEntry(entry, snapshot.files[entry.path], paths);
    if (!undo) continue;
    sshdChanges ||= isSshdPath(paths, entry.path);
    sudoChanges ||= isSudoPath(entry.path);
    steps.push({
      kind: 'restoreFile',
      path: entry.path,
      target: undo.target,
      writeThrough: entry.kind === 'edited',
      reason: 'no longer used',
      note: undo.note,
    });
  }
  if (sudoChanges && visudo) steps.push({ kind: 'validate', check: 'sudoersLive', visudo, path: paths.sudoersDropIn });
  // The share is mounted before sshd is reloaded: the hooks refuse managed logins until it is.
  if (plan.efsMount?.unit)
    steps.push({
      kind: 'enableService',
      unit: plan.efsMount.unit.name,
      wasEnabled: previous?.efsMount?.unit === plan.efsMount.unit.name,
    });
  else if (plan.efsMount) steps.push({ kind: 'mountFilesystem', mountPoint: plan.efsMount.where });
  steps.push({
    kind: 'validate',
    check: 'sshdLive',
    user,
    authenticationMethods: plan.sshd.authenticationMethods,
    ...(expected ? { expected } : {}),
  });

  let agent = plannedAgent;
  if (plan.mode === 'agent') {
    if (snapshot.systemdRunning) {
      for (const unit of plannedAgent?.units ?? [])
        steps.push({ kind: 'enableService', unit, wasEnabled: !!previous?.agent?.units.includes(unit) });
    } else {
      steps.push({
        kind: 'startAgent',
        command: [options.nodePath, ...AGENT_NODE_FLAGS, paths.hostBundle, 'agent', '--config', paths.configFile],
        user,
        // agentModeFit refused agent mode without it.
        setpriv: snapshot.setpriv!,
        userdbSocket: agentPaths.userdbSocket,
        keysSocketGroup: user,
        keysSocket: agentPaths.keysSocket,
        pidFile: agentPaths.pidFile,
        logFile: agentPaths.logFile,
        ...(options.extraCaCerts ? { extraCaCerts: options.extraCaCerts } : {}),
      });
    }
    steps.push({ kind: 'validate', check: 'sshdMatch', probes: matchProbes(snapshot, plan.mode) });
  } else if (agent) {
    if (agent.pidFile) steps.push(stopDetachedAgent(agent.pidFile, paths));
    if (snapshot.systemdRunning) for (const unit of agent.units) steps.push({ kind: 'disableService', unit });
    agent = undefined;
  }

  // Compat: the same check (after the switch, before the reload: the files are what sshd will read).
  if (plan.mode !== 'agent')
    steps.push({ kind: 'validate', check: 'sshdMatch', probes: matchProbes(snapshot, plan.mode) });

  let systemdTimer = previous?.systemdTimer;
  if (plan.schedule.kind === 'systemd' && snapshot.systemdRunning) {
    steps.push({ kind: 'enableService', unit: SYNC_TIMER, wasEnabled: systemdTimer === SYNC_TIMER });
    systemdTimer = SYNC_TIMER;
  } else if (plan.schedule.kind !== 'systemd' && systemdTimer && snapshot.systemdRunning) {
    steps.push({ kind: 'disableService', unit: systemdTimer });
    systemdTimer = undefined;
  }
  const final: InstallJournal = { ...intent, files: journalFiles, systemdTimer, agent };
  if (!agent) delete final.agent;
  if (!unchanged(final)) steps.push({ kind: 'writeJournal', stage: 'final', journal: final });
  if (sshdChanges) steps.push({ kind: 'reloadSshd' });
  return steps;
}

/**
 * Who the sshdMatch check asks about: root and the plain local user of the baseline keep the
 * AuthorizedKeysFile they had without keymaker; a keymaker account (compat: a member of keymaker-users
 * already; agent mode's users exist only through the agent) gets none.
 */
function matchProbes(snapshot: InstallSnapshot, mode: InstallMode): MatchProbe[] {
  const probes: MatchProbe[] = [];
  for (const { probe, settings } of snapshot.baseline ?? []) {
    const user = /^user=([^,]+),/.exec(probe.spec ?? '')?.[1];
    if (!user || user === NEW_USER_PROBE || probes.some((p) => p.user === user)) continue;
    if (snapshot.managedUsers?.includes(user)) continue;
    probes.push({ user, managed: false, spec: probe.spec, expect: settings.get('authorizedkeysfile') });
    if (probes.length >= 2) break;
  }
  if (!probes.some((p) => p.user === 'root')) probes.unshift({ user: 'root', managed: false });
  if (mode !== 'agent')
    for (const user of (snapshot.managedUsers ?? []).slice(0, 2)) probes.push({ user, managed: true });
  return probes;
}

/** Stops the detached agent and removes what it leaves: its log and the sockets its launcher made. */
function stopDetachedAgent(pidFile: string, paths: HostPaths): InstallStep {
  const agent = agentInstallPaths(paths);
  return { kind: 'stopAgent', pidFile, logFile: agent.logFile, sockets: [agent.userdbSocket, agent.keysSocket] };
}

/** Every path the planner may read or write, so the applier can snapshot them. */
export function pathsToSnapshot(paths: HostPaths, journal?: InstallJournal): string[] {
  const units = systemdUnitPaths(paths);
  return [
    ...new Set([
      paths.configFile,
      credentialsPath(paths),
      paths.hostBundle,
      ...Object.values(hostLoaderFiles(paths)),
      paths.authorizedKeysCommand,
      paths.pamCreateAccountCommand,
      paths.syncGroupsCommand,
      units.service,
      units.timer,
      paths.cronFile,
      paths.pamSshd,
      paths.sshdConfig,
      paths.sshdDropIn,
      paths.fstab,
      paths.efsHomeCommand,
      path.join(paths.systemdDir, mountUnitName(DEFAULT_EFS_HOME_BASE)),
      agentInstallPaths(paths).keysClient,
      agentInstallPaths(paths).nsswitch,
      paths.sudoers,
      paths.sudoersDropIn,
      paths.sudoConf,
      ...Object.values(agentInstallPaths(paths).units),
      ...(journal?.files.map((f) => f.path) ?? []),
    ]),
  ];
}

/** Every directory the planner may create (each planned directory and file's parent, up to /), to stat. */
export function dirsToSnapshot(paths: HostPaths, journal?: InstallJournal): string[] {
  const dirs = new Set<string>();
  const up = (d: string) => {
    for (; !dirs.has(d); d = path.dirname(d)) {
      dirs.add(d);
      if (d === path.dirname(d)) break;
    }
  };
  const agent = agentInstallPaths(paths);
  for (const d of [
    path.dirname(paths.configFile),
    paths.libDir,
    paths.stateDir,
    paths.cacheDir,
    path.dirname(agent.keysSocket),
    path.dirname(agent.userdbSocket),
  ])
    up(d);
  for (const p of pathsToSnapshot(paths, journal)) up(path.dirname(p));
  // The EFS home share's mount point and its parents (/home exists: it must not be planned as new).
  up(journal?.efsMount?.mountPoint ?? DEFAULT_EFS_HOME_BASE);
  return [...dirs];
}

export interface UndoOfEntry {
  /** undefined = delete the file. */
  target: FileState | undefined;
  note?: string;
}

/**
 * How to undo one journal entry, given the file as it is now (current); undefined when there is
 * nothing to undo. Somebody else's file loses only keymaker's lines and keeps every other byte,
 * its mode and owner, whatever happened to it since the first install (the journal's original
 * predates every later edit and every later install, so it is not written back).
 */
export function undoJournalEntry(
  entry: JournalFile,
  current: FileState | undefined,
  paths: HostPaths,
): UndoOfEntry | undefined {
  const original: FileState | undefined = entry.original
    ? {
        content: Buffer.from(entry.original.base64, 'base64'),
        mode: entry.original.mode,
        uid: entry.original.uid,
        gid: entry.original.gid,
      }
    : undefined;
  if (!current && !original) return undefined;
  if (!current) return { target: original };
  const unchanged = sha256(current.content) === entry.installedSha256;
  if (entry.kind === 'edited') {
    const text = current.content.toString('utf8');
    const removed =
      entry.path === paths.pamSshd
        ? removePamHook(text, paths)
        : entry.path === paths.sudoConf
          ? removeDynamicGroups(text)
          : entry.path === paths.fstab
            ? removeFstabBlock(text)
            : removeSshdBlocks(text, paths);
    if (removed.text === text) return undefined;
    const notes = removed.notes.map((n) => `${entry.path}: ${n}`);
    // A file install created that holds nothing else goes again.
    if (!original && removed.text === '') return { target: undefined, note: notes.join('; ') || undefined };
    const asBefore = !!original && Buffer.from(removed.text).equals(original.content);
    if (!unchanged && !asBefore && notes.length === 0)
      notes.push(`${entry.path} was edited after install: removed only keymaker's lines, kept the rest`);
    return {
      target: { ...current, content: Buffer.from(removed.text) },
      note: notes.length > 0 ? notes.join('; ') : undefined,
    };
  }
  if (unchanged) return { target: original };
  return {
    target: original,
    note: `${entry.path} was edited after install; ${original ? 'restored the original' : 'removed it'} anyway`,
  };
}

/** Uninstall's steps, from the install state and the files as they are now. */
export interface UninstallPlan {
  /** sshd back without keymaker's settings, checked, reloaded: IAM logins stop. Undone as a whole on failure. */
  switchOff: InstallStep[];
  /** Everything else, the install state shrinking as it goes, so a stopped uninstall resumes. */
  cleanUp: InstallStep[];
  /** Journal entries already as they were before install. */
  untouched: string[];
}

export function planUninstall(
  journal: InstallJournal,
  current: Record<string, FileState | undefined>,
  paths: HostPaths,
  systemdRunning: boolean,
): UninstallPlan {
  const entries = journal.files.map((entry) => ({ entry, undo: undoJournalEntry(entry, current[entry.path], paths) }));
  const restore = ({ entry, undo }: (typeof entries)[number]): InstallStep[] =>
    undo
      ? [
          {
            kind: 'restoreFile',
            path: entry.path,
            target: undo.target,
            writeThrough: entry.kind === 'edited',
            note: undo.note,
          },
        ]
      : [];
  const sshd = entries.filter((e) => isSshdPath(paths, e.entry.path));
  const others = entries.filter((e) => !isSshdPath(paths, e.entry.path));
  const switchOff: InstallStep[] = sshd.some((e) => e.undo)
    ? [...sshd.flatMap(restore), { kind: 'validate', check: 'sshdWithoutKeymaker' }, { kind: 'reloadSshd' }]
    : [];

  const cleanUp: InstallStep[] = [];
  let remaining = [...journal.files];
  const done = (entry: JournalFile) => {
    remaining = remaining.filter((e) => e.path !== entry.path);
    cleanUp.push({ kind: 'writeJournal', stage: 'progress', journal: { ...journal, files: remaining } });
  };
  for (const { entry } of sshd) done(entry);
  const timer = journal.systemdTimer && systemdRunning ? journal.systemdTimer : undefined;
  if (timer) cleanUp.push({ kind: 'disableService', unit: timer });
  // The agent stops after sshd no longer asks it, before its units and files go.
  if (journal.agent?.pidFile) cleanUp.push(stopDetachedAgent(journal.agent.pidFile, paths));
  const agentUnits = systemdRunning ? (journal.agent?.units ?? []) : [];
  for (const unit of agentUnits) cleanUp.push({ kind: 'disableService', unit });
  // The EFS share, once no login uses it: stopping its unit unmounts it; without systemd, umount.
  const efs = journal.efsMount;
  const efsUnit = efs?.unit && systemdRunning ? efs.unit : undefined;
  if (efsUnit) cleanUp.push({ kind: 'disableService', unit: efsUnit });
  else if (efs && !efs.unit) cleanUp.push({ kind: 'unmountFilesystem', mountPoint: efs.mountPoint });
  if (journal.authselect) cleanUp.push({ kind: 'restoreAuthselectProfile', previous: journal.authselect });
  for (const e of others) {
    cleanUp.push(...restore(e));
    done(e.entry);
  }
  if (timer || agentUnits.length > 0 || efsUnit) cleanUp.push({ kind: 'reloadServiceManager' });
  cleanUp.push({ kind: 'removeFile', path: journalPath(paths) });
  for (const d of [...journal.dirs].reverse())
    cleanUp.push({ kind: 'removeDirectory', path: d.path, recursive: d.recursive });
  if (journal.user.created) cleanUp.push({ kind: 'removeSystemUser', name: journal.user.name });
  return { switchOff, cleanUp, untouched: entries.filter((e) => !e.undo).map((e) => e.entry.path) };
}

/** The plan as --dry-run and --json show it: contents summarized, every step listed. */
export interface InstallPlanSummary {
  user: { name: string; create: boolean };
  sshd: InstallPlan['sshd']['mode'];
  schedule: InstallPlan['schedule']['kind'];
  config: HostConfig;
  dirs: { path: string; mode: string; owner: string }[];
  files: { path: string; purpose: string; mode: string; owner: string; bytes: number }[];
  restores: string[];
  steps: InstallStepSummary[];
  warnings: string[];
}

export function describeInstallPlan(plan: InstallPlan): InstallPlanSummary {
  return {
    user: plan.user,
    sshd: plan.sshd.mode,
    schedule: plan.schedule.kind,
    config: plan.config,
    dirs: plan.dirs.map((d) => ({ path: d.path, mode: d.mode.toString(8), owner: `${d.owner}:${d.group}` })),
    files: plan.files.map((f) => ({
      path: f.path,
      purpose: f.purpose,
      mode: f.mode.toString(8),
      owner: `${f.owner}:${f.group}`,
      bytes: f.content.length,
    })),
    restores: plan.restores,
    steps: plan.steps.map(summarizeStep),
    warnings: plan.warnings,
  };
}
