import * as path from 'node:path';
import { firstLine, InputError } from '@keymaker/core';
import type { FileState, HostSystem } from '../system/host-system';
import { hostLoaderFiles, type HostPaths } from '../system/paths';
import { applySteps } from './apply-steps';
import { editedPaths, readJournal, requireRoot, writeThrough } from './file-ops';
import { agentInstallPaths, findNssSystemd, findSetpriv } from './agent-mode';
import { MOUNT_EFS_HELPERS } from './efs-mount';
import { gatherAuthselect } from './authselect';
import { MANAGED_USERS_GROUP } from '../accounts/managed-accounts';
import { journalPath, type InstallJournal } from './journal';
import {
  describeInstallPlan,
  dirsToSnapshot,
  pathsToSnapshot,
  planInstall,
  planUninstall,
  type InstallOptions,
  type InstallPlanSummary,
  type InstallSnapshot,
} from './plan';
import { effectiveSshdConfig, gatherBaseline, isSystemdRunning, type SshdOptions } from './sshd-checks';
import { performStep } from './step-handlers';
import { sudoOnHost } from './sudoers';
import { changesMachine, describeStep, stepActivity, type InstallStep } from './steps';

export type { ReloadStrategy, SshdOptions } from './sshd-checks';
export { reloadSshd } from './sshd-checks';

export interface InstallRunOptions extends InstallOptions, SshdOptions {
  /** The host bundle to copy (dist/keymaker-host.js). */
  bundleSource: string;
  /** AWS shared credentials file to copy to /etc/keymaker/credentials. */
  credentialsSource?: string;
  dryRun: boolean;
}

export interface UninstallRunOptions extends SshdOptions {
  paths: HostPaths;
  dryRun: boolean;
}

export type InstallLog = (line: string) => void;

export interface InstallResult {
  dryRun: boolean;
  plan: InstallPlanSummary;
  /** Paths written, restored or removed. */
  changed: string[];
  userCreated: boolean;
  reload: string;
}

export interface UninstallResult {
  dryRun: boolean;
  nothingToDo: boolean;
  changed: string[];
  userRemoved: boolean;
  reload: string;
  warnings: string[];
}

// ---------------------------------------------------------------- install

const APT_GET = '/usr/bin/apt-get';

/** Temp files of a run that was killed: atomic-write temps (.NAME.keymaker-HEX) and candidate sshd configs. */
const STRAY_TEMP = /^(\..+\.keymaker-[0-9a-f]{12}|\.keymaker-candidate-[0-9a-f]{12}(\.conf)?)$/;

/** Removes what an interrupted install or uninstall left in the directories keymaker writes to. */
function removeStrayTemps(
  sys: HostSystem,
  paths: HostPaths,
  journal: InstallJournal | undefined,
  log: InstallLog,
): void {
  const dirs = new Set([
    path.dirname(paths.sshdConfig),
    path.dirname(journalPath(paths)),
    ...pathsToSnapshot(paths, journal).map((p) => path.dirname(p)),
  ]);
  for (const p of editedPaths(paths)) {
    try {
      dirs.add(path.dirname(writeThrough(sys, p)));
    } catch {
      /* reported by the run itself */
    }
  }
  for (const dir of dirs) {
    for (const name of sys.readdir(dir) ?? []) {
      const p = path.join(dir, name);
      if (!STRAY_TEMP.test(name) || sys.lstat(p)?.type !== 'file') continue;
      sys.removeFile(p);
      log(`removed ${p}, left by an interrupted keymaker run`);
    }
  }
}

function lookupUserIds(sys: HostSystem, user: string): { uid: number; gid: number } | undefined {
  const uid = sys.userIds(user)?.uid;
  const gid = sys.groupId(user);
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

function gatherSnapshot(
  sys: HostSystem,
  opts: InstallRunOptions,
  journal: InstallJournal | undefined,
): InstallSnapshot {
  const { paths } = opts;
  for (const p of editedPaths(paths)) writeThrough(sys, p);
  const files: Record<string, FileState | undefined> = {};
  for (const p of pathsToSnapshot(paths, journal)) files[p] = sys.readFile(p);
  const bundle = sys.readFile(opts.bundleSource);
  if (!bundle) {
    throw new InputError(
      'FILE_NOT_FOUND',
      `host bundle ${opts.bundleSource} not found; build it (cd packages/cli && npx tsup) or pass --bundle PATH`,
    );
  }
  let credentials: Buffer | undefined;
  if (opts.credentialsSource) {
    credentials = sys.readFile(opts.credentialsSource)?.content;
    if (!credentials) throw new InputError('FILE_NOT_FOUND', `--credentials-file ${opts.credentialsSource} not found`);
  }
  const effective = effectiveSshdConfig(sys, opts, paths).get('authorizedkeyscommand');
  const sshdConfigDirEntries = sys.readdir(paths.sshdConfigDir) ?? [];
  const nssSystemdLibrary = findNssSystemd(sys);
  const systemdRunning = isSystemdRunning(sys);
  return {
    files,
    baseline: gatherBaseline(sys, opts, files, sshdConfigDirEntries),
    sshdConfigDirEntries,
    effectiveAuthorizedKeysCommand: effective && effective !== 'none' ? effective : undefined,
    systemdRunning,
    userExists: sys.userIds(opts.user) !== undefined,
    lookupUserIds: lookupUserIds(sys, opts.user),
    existingDirs: dirsToSnapshot(paths, journal).filter((d) => sys.stat(d)?.type === 'dir'),
    nologinShell: nologinShell(sys),
    journal,
    bundle: bundle.content,
    loader: gatherLoader(sys, opts),
    credentials,
    nssSystemdLibrary,
    ...(nssSystemdLibrary ? {} : aptInstaller(sys, agentInstallPaths(paths).nsswitch)),
    ...(systemdRunning ? {} : { setpriv: findSetpriv(sys) }),
    ...(authselectManaged(sys, agentInstallPaths(paths).nsswitch) ? { authselect: gatherAuthselect(sys) } : {}),
    sudo: sudoOnHost(sys),
    efsUtils: MOUNT_EFS_HELPERS.some((p) => sys.stat(p)?.type === 'file'),
    managedUsers: managedUsers(sys),
  };
}

/**
 * The loader and CommonJS bundle built next to the host bundle (packages/cli/dist), and the code
 * cache for them, made by the Node the wrappers will run, with the environment the wrappers give it
 * (no NODE_OPTIONS: V8 rejects a cache made under other flags).
 */
function gatherLoader(sys: HostSystem, opts: InstallRunOptions): InstallSnapshot['loader'] {
  const dir = path.dirname(opts.bundleSource);
  const built = hostLoaderFiles({ libDir: dir });
  const loader = sys.readFile(built.loader)?.content;
  const bundle = sys.readFile(built.bundle)?.content;
  if (!loader || !bundle) return undefined;
  const made = sys.run(
    [
      '/usr/bin/env',
      '-u',
      'NODE_OPTIONS',
      '-u',
      'NODE_PATH',
      opts.nodePath,
      built.loader,
      '--print-code-cache',
      hostLoaderFiles(opts.paths).cache,
    ],
    { timeoutMs: 60_000 },
  );
  const codeCache =
    made.code === 0 && /^[A-Za-z0-9+/]+=*$/.test(made.stdout) ? Buffer.from(made.stdout, 'base64') : undefined;
  return {
    loader,
    bundle,
    codeCache,
    codeCacheProblem: codeCache ? undefined : (made.stderr.trim().split('\n').pop() ?? `exit ${made.code}`),
  };
}

/** The members of keymaker-users that have a passwd entry (/etc/group and /etc/passwd: compat mode's accounts). */
function managedUsers(sys: HostSystem): string[] {
  const text = (p: string) => sys.readFile(p)?.content.toString('utf8') ?? '';
  const names = new Set(
    text('/etc/passwd')
      .split('\n')
      .map((line) => line.split(':')[0]),
  );
  const entry = text('/etc/group')
    .split('\n')
    .find((line) => line.startsWith(`${MANAGED_USERS_GROUP}:`));
  return (entry?.split(':')[3] ?? '').split(',').filter((name) => name !== '' && names.has(name));
}

/**
 * Debian and Ubuntu: apt-get installs libnss-systemd at the installed systemd's version (other package managers:
 * the administrator's job, said). The package depends on systemd of exactly its own version, so a plain
 * `apt-get install libnss-systemd` upgrades systemd, libsystemd0, libudev1 and PAM's module along with it whenever
 * the archive is ahead (observed on Debian 12): an install that only needs an NSS module must not do that. A
 * simulation (`apt-get -s`, which changes nothing) checks that the package alone is installed; otherwise agent
 * mode is not available, with the reason.
 */
function aptInstaller(
  sys: HostSystem,
  nsswitch: string,
): Pick<InstallSnapshot, 'nssSystemdInstaller' | 'nssSystemdInstallProblem'> {
  const pkg = 'libnss-systemd';
  if (sys.stat('/etc/debian_version')?.type !== 'file' || sys.stat(APT_GET)?.type !== 'file') return {};
  const query = sys.run(['dpkg-query', '-W', '-f', '${db:Status-Abbrev} ${Version}', 'systemd']);
  const version = /^ii\s+(\S+)$/.exec(query.code === 0 ? query.stdout.trim() : '')?.[1];
  if (!version)
    return {
      nssSystemdInstallProblem: `the systemd package is not installed (${pkg} needs it at its own version), so apt-get would install systemd too`,
    };
  const args = ['install', '-y', '-q', '--no-install-recommends', '--no-remove', `${pkg}=${version}`];
  const sim = sys.run(['env', 'LC_ALL=C', APT_GET, '-s', ...args]);
  if (sim.code !== 0)
    return {
      nssSystemdInstallProblem: `apt-get cannot install ${pkg}=${version} (the installed systemd's version): ${firstLine(
        sim.stderr.trim() || sim.stdout.trim(),
      )} (apt-get update may help)`,
    };
  const changes = sim.stdout
    .split('\n')
    .map((line) => /^(?:Inst|Remv|Purg)\s+([^\s:]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
  const others = changes.filter((name) => name !== pkg);
  if (others.length > 0 || !changes.includes(pkg))
    return {
      nssSystemdInstallProblem: `apt-get would not install ${pkg}=${version} alone (apt-get -s: ${
        changes.length > 0 ? `it would also change ${others.join(', ')}` : 'nothing to install'
      })`,
    };
  return {
    nssSystemdInstaller: { package: pkg, argv: [APT_GET, ...args], keepFiles: [nsswitch] },
  };
}

/** authselect's mark: nsswitch.conf is its symlink into /etc/authselect. */
function authselectManaged(sys: HostSystem, nsswitch: string): boolean {
  return sys.lstat(nsswitch)?.type === 'symlink' && sys.realpath(nsswitch).startsWith('/etc/authselect/');
}

function nologinShell(sys: HostSystem): string {
  return ['/usr/sbin/nologin', '/sbin/nologin', '/bin/false'].find((p) => sys.stat(p)?.type === 'file') ?? '/bin/false';
}

/**
 * `keymaker install`: gather what is on the machine, plan every step (plan.ts), then apply them in
 * order (apply-steps.ts): the checks, then the changes, with the install state on disk before the
 * files change; any failure undoes what this run did, byte for byte, and says what failed.
 */
export function runInstall(sys: HostSystem, opts: InstallRunOptions, log: InstallLog): InstallResult {
  const { paths } = opts;
  requireRoot(sys, 'install');
  const { journal: previous } = readJournal(sys, paths);
  if (!opts.dryRun) removeStrayTemps(sys, paths, previous, log);
  const plan = planInstall(gatherSnapshot(sys, opts, previous), opts);
  const ctx = { sys, paths, sshd: opts, log, warn: (w: string) => log(`warning: ${w}`) };
  const runner = {
    perform: (step: (typeof plan.steps)[number]) => performStep(ctx, step),
    activity: stepActivity,
    changes: changesMachine,
  };
  // The checks before the first change run in a dry run too; nothing else does.
  const firstChange = plan.steps.findIndex(changesMachine);
  const checks = firstChange < 0 ? plan.steps : plan.steps.slice(0, firstChange);
  applySteps(checks, runner, 'install');
  if (opts.dryRun) {
    return {
      dryRun: true,
      plan: describeInstallPlan(plan),
      changed: [],
      userCreated: false,
      reload: 'dry run: nothing changed',
    };
  }
  for (const w of plan.warnings) log(`warning: ${w}`);
  const applied = applySteps(plan.steps.slice(checks.length), runner, 'install');
  const reload =
    applied.find((a) => a.step.kind === 'reloadSshd')?.result.message ??
    'sshd configuration unchanged; no reload needed';
  if (!applied.some((a) => a.step.kind === 'reloadSshd')) log(reload);
  return {
    dryRun: false,
    plan: describeInstallPlan(plan),
    changed: applied.flatMap((a) => a.result.changed ?? []),
    userCreated: applied.some((a) => a.step.kind === 'createSystemUser'),
    reload,
  };
}

// ---------------------------------------------------------------- uninstall

/**
 * `keymaker uninstall`: undoes what the journal lists (planUninstall). sshd first (IAM logins
 * stop), validated with sshd -t before the reload and put back as a whole if sshd rejects it; then
 * the schedule, the files, directories and the user install created. Resumable: the journal
 * shrinks as each step is done; without a journal there is nothing to do.
 */
export function runUninstall(sys: HostSystem, opts: UninstallRunOptions, log: InstallLog): UninstallResult {
  const { paths } = opts;
  requireRoot(sys, 'uninstall');
  const warnings: string[] = [];
  const { journal } = readJournal(sys, paths);
  if (!opts.dryRun) removeStrayTemps(sys, paths, journal, log);
  if (!journal) {
    log(`nothing to uninstall: no install state at ${journalPath(paths)}`);
    return { dryRun: opts.dryRun, nothingToDo: true, changed: [], userRemoved: false, reload: 'not needed', warnings };
  }
  const current = Object.fromEntries(journal.files.map((e) => [e.path, sys.readFile(e.path)]));
  const plan = planUninstall(journal, current, paths, isSystemdRunning(sys));
  // Packages are the administrator's: other software may use them by now, and without keymaker's nsswitch
  // lines an NSS module is inert.
  const added = journal.packages ?? [];
  const packagesLeft =
    added.length > 0
      ? `${added.join(', ')} installed: keymaker install added ${added.length > 1 ? 'them' : 'it'} for agent mode and uninstall does not remove packages (apt-get remove ${added.join(' ')} does)`
      : undefined;
  if (opts.dryRun) {
    for (const p of plan.untouched) log(`would leave ${p} (already as before install)`);
    for (const step of [...plan.switchOff, ...plan.cleanUp]) log(`would ${describeStep(step)}`);
    if (packagesLeft) log(`would leave ${packagesLeft}`);
    return {
      dryRun: true,
      nothingToDo: false,
      changed: [],
      userRemoved: false,
      reload: 'dry run: nothing changed',
      warnings,
    };
  }
  const ctx = { sys, paths, sshd: opts, log, warn: (w: string) => void warnings.push(w) };
  const runner = {
    perform: (step: InstallStep) => performStep(ctx, step),
    activity: stepActivity,
    changes: changesMachine,
    // "uninstall stopped: ... keymaker's settings are still in place" once the sshd files are back.
    reportsItself: (step: InstallStep) => step.kind === 'validate',
  };
  const applied = [
    ...applySteps(plan.switchOff, runner, 'uninstall'),
    ...applySteps(plan.cleanUp, runner, 'uninstall', { rollBack: false }),
  ];
  if (packagesLeft) log(`left ${packagesLeft}`);
  for (const w of warnings) log(`warning: ${w}`);
  return {
    dryRun: false,
    nothingToDo: false,
    changed: applied.flatMap((a) => a.result.changed ?? []),
    userRemoved: applied.some((a) => a.step.kind === 'removeSystemUser' && a.result.message === 'removed'),
    reload:
      applied.find((a) => a.step.kind === 'reloadSshd')?.result.message ??
      'sshd configuration unchanged; no reload needed',
    warnings,
  };
}
