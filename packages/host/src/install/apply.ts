import * as path from 'node:path';
import { firstLine, HostError, InputError } from '@keymaker/core';
import type { FileState, HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import { applySteps } from './apply-steps';
import { editedPaths, readJournal, requireRoot, restoreFile, writeJournal, writeThrough } from './file-ops';
import { journalPath, type InstallJournal, type JournalFile } from './journal';
import {
  describeInstallPlan,
  dirsToSnapshot,
  pathsToSnapshot,
  planInstall,
  undoJournalEntry,
  type InstallOptions,
  type InstallPlanSummary,
  type InstallSnapshot,
  type UndoOfEntry,
} from './plan';
import {
  effectiveSshdConfig,
  gatherBaseline,
  isSystemdRunning,
  reloadSshd,
  sshdFileArgs,
  sshdRun,
  type SshdOptions,
} from './sshd-checks';
import { performStep } from './step-handlers';
import { changesMachine, stepActivity } from './steps';

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
  return {
    files,
    baseline: gatherBaseline(sys, opts, files, sshdConfigDirEntries),
    sshdConfigDirEntries,
    effectiveAuthorizedKeysCommand: effective && effective !== 'none' ? effective : undefined,
    systemdRunning: isSystemdRunning(sys),
    userExists: sys.userIds(opts.user) !== undefined,
    lookupUserIds: lookupUserIds(sys, opts.user),
    existingDirs: dirsToSnapshot(paths, journal).filter((d) => sys.stat(d)?.type === 'dir'),
    nologinShell: nologinShell(sys),
    journal,
    bundle: bundle.content,
    credentials,
  };
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
  const ctx = { sys, paths, sshd: opts, log };
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
 * `keymaker uninstall`: undoes what the journal lists. sshd first (IAM logins
 * stop), validated with sshd -t before the reload; then PAM, the schedule, the
 * files, directories and the user install created. Resumable: the journal
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
  const isSshd = (p: string) => p === paths.sshdConfig || p === paths.sshdDropIn;
  const actions = journal.files.map((e) => ({ entry: e, action: undoJournalEntry(e, sys.readFile(e.path), paths) }));
  if (opts.dryRun) {
    for (const { entry, action } of actions) {
      log(
        action
          ? `would ${action.target ? 'restore' : 'remove'} ${entry.path}`
          : `would leave ${entry.path} (already as before install)`,
      );
    }
    for (const d of [...journal.dirs].reverse())
      log(`would remove ${d.path}${d.recursive ? ' and its contents' : ' if empty'}`);
    if (journal.user.created) log(`would remove the user ${journal.user.name}`);
    return {
      dryRun: true,
      nothingToDo: false,
      changed: [],
      userRemoved: false,
      reload: 'dry run: nothing changed',
      warnings,
    };
  }

  const changed: string[] = [];
  let remaining = [...journal.files];
  const apply = ({ entry, action }: { entry: JournalFile; action: UndoOfEntry | undefined }) => {
    if (action) {
      restoreFile(sys, paths, entry.path, action.target);
      changed.push(entry.path);
      if (action.note) warnings.push(action.note);
      log(`${action.target ? 'restored' : 'removed'} ${entry.path}`);
    }
    remaining = remaining.filter((e) => e.path !== entry.path);
    writeJournal(sys, paths, { ...journal, files: remaining });
  };

  // 1. sshd: the switch that turns IAM logins off. Never reload a config sshd -t rejects.
  const sshdActions = actions.filter((a) => isSshd(a.entry.path));
  const sshdBefore = sshdActions.map((a) => ({ path: a.entry.path, state: sys.readFile(a.entry.path) }));
  let reload = 'sshd configuration unchanged; no reload needed';
  if (sshdActions.some((a) => a.action)) {
    for (const a of sshdActions) if (a.action) restoreFile(sys, paths, a.entry.path, a.action.target);
    const check = sshdRun(sys, opts.sshd, ['-t', ...sshdFileArgs(paths)]);
    if (check.code !== 0) {
      for (const b of sshdBefore) restoreFile(sys, paths, b.path, b.state);
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `uninstall stopped: with keymaker's settings removed, sshd -t rejects the configuration (${firstLine(check.stderr.trim())}); keymaker's settings are still in place: fix the sshd configuration, then run uninstall again`,
      );
    }
    reload = reloadSshd(sys, opts, paths);
    log(reload);
  }
  for (const a of sshdActions) apply(a);

  // 2. The schedule, then every other file.
  if (journal.systemdTimer && isSystemdRunning(sys)) {
    const r = sys.run(['systemctl', 'disable', '--now', journal.systemdTimer]);
    if (r.code !== 0)
      warnings.push(`systemctl disable --now ${journal.systemdTimer} failed: ${firstLine(r.stderr.trim())}`);
  }
  for (const a of actions) if (!isSshd(a.entry.path)) apply(a);
  if (journal.systemdTimer && isSystemdRunning(sys)) sys.run(['systemctl', 'daemon-reload']);

  // 3. The state file, directories install created, the lookup user.
  sys.removeFile(journalPath(paths));
  for (const d of [...journal.dirs].reverse()) {
    if (!sys.stat(d.path)) continue;
    if (d.recursive) sys.removeTree(d.path);
    else if (!sys.removeEmptyDir(d.path)) {
      warnings.push(`left ${d.path}: it holds files keymaker did not write`);
      continue;
    }
    changed.push(d.path);
  }
  let userRemoved = false;
  if (journal.user.created && sys.userIds(journal.user.name)) {
    const r = sys.run(['userdel', journal.user.name]);
    if (r.code === 0) {
      userRemoved = true;
      log(`removed the user ${journal.user.name}`);
    } else {
      warnings.push(`userdel ${journal.user.name} failed (${firstLine(r.stderr.trim())}); remove it by hand`);
    }
  }
  for (const w of warnings) log(`warning: ${w}`);
  return { dryRun: false, nothingToDo: false, changed, userRemoved, reload, warnings };
}
