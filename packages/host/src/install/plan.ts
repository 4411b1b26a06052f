import * as path from 'node:path';
import { HostError, InputError, linuxNameProblem } from '@keymaker/core';
import { DEFAULT_HOST_CONFIG, parseHostConfig, serializeHostConfig, type HostConfig } from '../config/host-config';
import type { HostPaths } from '../system/paths';
import type { InstallJournal } from './journal';
import { insertPamHook, removePamHook } from './pam';
import type { SafePathTarget } from './safe-path';
import {
  composeAuthenticationMethods,
  findDropInInclude,
  insertSshdBlock,
  KEYMAKER_AUTHENTICATION_METHODS,
  removeSshdBlocks,
  renderSshdDropIn,
  sshdSettingLines,
  type DropInInclude,
  type SshdProbe,
} from './sshd-config';
import type { FileState } from '../system/host-system';
import {
  authorizedKeysWrapper,
  cronFile,
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
  /** The user sshd runs the lookup as. Default keymaker. */
  user: string;
  /** Absolute real path of the Node binary the wrappers exec. */
  nodePath: string;
  /** Replace an existing AuthorizedKeysCommand (EC2 Instance Connect...). */
  force: boolean;
  schedule: 'auto' | 'systemd' | 'cron';
  syncIntervalMinutes?: number;
  region?: string;
  iamEndpoint?: string;
  stsEndpoint?: string;
  deadlineMs?: number;
  profile?: string;
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
  journal?: InstallJournal;
  /** The host bundle to install (dist/keymaker-host.js). */
  bundle: Buffer;
  /** AWS shared credentials file to install, for hosts without an instance role. */
  credentials?: Buffer;
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
  schedule: { kind: 'systemd' | 'cron'; timer?: string };
  config: HostConfig;
  /** What sshd, PAM and the schedule run or read: checked against sshd's safe-path rule first. */
  safePathTargets: SafePathTarget[];
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
  if (existingCommand && existingCommand.split(/\s+/)[0] !== paths.authorizedKeysCommand) {
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
  add(paths.authorizedKeysCommand, authorizedKeysWrapper(paths, options.nodePath), 0o755, 'AuthorizedKeysCommand');
  add(
    paths.pamCreateAccountCommand,
    pamCreateAccountWrapper(paths, options.nodePath),
    0o755,
    'PAM account-creation hook',
  );
  add(paths.syncGroupsCommand, syncGroupsWrapper(paths, options.nodePath), 0o755, 'group sync command');

  const scheduleKind = options.schedule === 'auto' ? (snapshot.systemdRunning ? 'systemd' : 'cron') : options.schedule;
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
  add(paths.pamSshd, insertPamHook(pamText.text, paths), pamState.mode, 'PAM hook line', {
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
    mainEdit(insertSshdBlock(stripped, sshdSettingLines(paths, user, authenticationMethods)));
  }

  const planned = new Set(files.map((f) => f.path));
  const restores = (snapshot.journal?.files ?? []).map((f) => f.path).filter((p) => !planned.has(p));

  const dirs: PlannedDir[] = [
    { path: path.dirname(paths.configFile), mode: 0o755, owner: 'root', group: 'root', recursive: false },
    { path: paths.libDir, mode: 0o755, owner: 'root', group: 'root', recursive: false },
    { path: paths.stateDir, mode: 0o700, owner: 'root', group: 'root', recursive: false },
    // Written by root (sync, PAM hook), read by the lookup user; nobody else.
    { path: paths.cacheDir, mode: 0o750, owner: 'root', group: user, recursive: true },
  ];

  const safePathTargets: SafePathTarget[] = [
    { path: options.nodePath, what: 'the Node binary', needOthers: 'exec' },
    { path: paths.hostBundle, what: 'the host bundle', needOthers: 'read' },
    { path: paths.authorizedKeysCommand, what: 'the AuthorizedKeysCommand', needOthers: 'exec' },
    { path: paths.pamCreateAccountCommand, what: 'the PAM hook', needOthers: 'none' },
    { path: paths.syncGroupsCommand, what: 'the group sync command', needOthers: 'none' },
    { path: paths.configFile, what: 'the host config', needOthers: 'read' },
  ];

  return {
    user: { name: user, create: !snapshot.userExists },
    dirs,
    files,
    restores,
    sshd: { mode: include ? 'drop-in' : 'main-config', include, authenticationMethods },
    schedule: { kind: scheduleKind, timer: scheduleKind === 'systemd' ? SYNC_TIMER : undefined },
    config,
    safePathTargets,
    warnings,
  };
}

/** Every path the planner may read or write, so the applier can snapshot them. */
export function pathsToSnapshot(paths: HostPaths, journal?: InstallJournal): string[] {
  const units = systemdUnitPaths(paths);
  return [
    ...new Set([
      paths.configFile,
      credentialsPath(paths),
      paths.hostBundle,
      paths.authorizedKeysCommand,
      paths.pamCreateAccountCommand,
      paths.syncGroupsCommand,
      units.service,
      units.timer,
      paths.cronFile,
      paths.pamSshd,
      paths.sshdConfig,
      paths.sshdDropIn,
      ...(journal?.files.map((f) => f.path) ?? []),
    ]),
  ];
}

/** The plan for people (--dry-run) and scripts (--json): contents summarized. */
export function describeInstallPlan(plan: InstallPlan): Record<string, unknown> {
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
    warnings: plan.warnings,
  };
}
