import * as path from 'node:path';
import { firstLine, HostError, InputError, isKeymakerError } from '@keymaker/core';
import type { HostPaths } from '../system/paths';
import {
  journalPath,
  originalOf,
  parseJournal,
  serializeJournal,
  sha256,
  type InstallJournal,
  type JournalFile,
} from './journal';
import { removePamHook } from './pam';
import {
  describeInstallPlan,
  pathsToSnapshot,
  planInstall,
  type InstallOptions,
  type InstallPlan,
  type InstallSnapshot,
  type PlannedFile,
} from './plan';
import { assertSafePaths } from './safe-path';
import {
  authenticationWeakenings,
  baselineMain,
  candidateMainForDropIn,
  effectiveSettingProblems,
  expectedEffectiveSettings,
  parseSshdT,
  removeSshdBlocks,
  sshdProbes,
  type SshdProbe,
} from './sshd-config';
import type { FileState, HostSystem } from '../system/host-system';
import { cronLinesForSyntaxCheck, SYNC_TIMER } from './templates';

export type ReloadStrategy = 'auto' | 'systemd' | 'service' | 'pidfile' | 'none';

export interface SshdOptions {
  /** The sshd binary used for -t/-T. Default /usr/sbin/sshd. */
  sshd: string;
  reload: ReloadStrategy;
  /** sshd's pid file for --reload pidfile/auto (default: PidFile from `sshd -T`). */
  sshdPidFile?: string;
}

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
  plan: Record<string, unknown>;
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

const isSystemdRunning = (sys: HostSystem) => sys.stat('/run/systemd/system')?.type === 'dir';

function requireRoot(sys: HostSystem, what: string): void {
  if (sys.getuid() !== 0)
    throw new HostError(
      'NOT_ROOT',
      `keymaker ${what} must run as root (it changes sshd, PAM and system files); run it with sudo`,
    );
}

function readJournal(sys: HostSystem, paths: HostPaths): { journal?: InstallJournal; state?: FileState } {
  const state = sys.readFile(journalPath(paths));
  if (!state) return {};
  return { journal: parseJournal(state.content.toString('utf8'), journalPath(paths)), state };
}

function writeJournal(sys: HostSystem, paths: HostPaths, journal: InstallJournal): void {
  sys.writeFileAtomic(journalPath(paths), serializeJournal(journal), 0o600, 0, 0);
}

function sameFile(a: FileState | undefined, content: Buffer, mode: number, uid: number, gid: number): boolean {
  return !!a && a.content.equals(content) && a.mode === mode && a.uid === uid && a.gid === gid;
}

function restoreState(sys: HostSystem, p: string, state: FileState | undefined): void {
  if (state) sys.writeFileAtomic(p, state.content, state.mode, state.uid, state.gid);
  else sys.removeFile(p);
}

/**
 * Where to write sshd_config or pam.d/sshd. A symlink stays a symlink: the
 * write goes (atomically, in the target's own directory) to the regular file it
 * leads to. A link that leads nowhere, or to something that is not a regular
 * file, is refused before anything changes.
 */
function writeThrough(sys: HostSystem, p: string): string {
  if (sys.lstat(p)?.type !== 'symlink') return p;
  let target: string | undefined;
  try {
    target = sys.realpath(p);
  } catch {
    /* dangling */
  }
  if (!target || sys.lstat(target)?.type !== 'file') {
    throw new HostError(
      'UNSUPPORTED_HOST',
      `refusing to install: ${p} is a symlink that does not lead to a regular file${target ? ` (${target})` : ''}; point it at the real file, or replace it with one, then run install again`,
    );
  }
  return target;
}

/** The administrator's files keymaker edits (its lines in them); every other file in the journal is keymaker's own. */
const editedPaths = (paths: HostPaths) => [paths.sshdConfig, paths.pamSshd];

function restoreFile(sys: HostSystem, paths: HostPaths, p: string, state: FileState | undefined): void {
  restoreState(sys, editedPaths(paths).includes(p) ? writeThrough(sys, p) : p, state);
}

function ids(sys: HostSystem, owner: string, group: string): { uid: number; gid: number } {
  const uid = /^\d+$/.test(owner) ? Number(owner) : owner === 'root' ? 0 : sys.userIds(owner)?.uid;
  const gid = /^\d+$/.test(group) ? Number(group) : group === 'root' ? 0 : sys.groupId(group);
  if (uid === undefined || gid === undefined)
    throw new HostError('SYSTEM_COMMAND_FAILED', `no such user or group ${owner}:${group}`);
  return { uid, gid };
}

// ---------------------------------------------------------------- sshd

function sshdRun(sys: HostSystem, sshd: string, args: string[]) {
  // sshd -t/-T refuse to run without the privilege separation directory (it lives on /run).
  if (!sys.stat('/run/sshd') && sys.stat('/run')) sys.mkdir('/run/sshd', 0o755, 0, 0);
  return sys.run([sshd, ...args]);
}

function sshdFileArgs(paths: HostPaths, file?: string): string[] {
  if (file) return ['-f', file];
  return paths.sshdConfig === '/etc/ssh/sshd_config' ? [] : ['-f', paths.sshdConfig];
}

function effectiveSshdConfig(
  sys: HostSystem,
  opts: SshdOptions,
  paths: HostPaths,
  file?: string,
  beforeChanges = true,
): Map<string, string> {
  const r = sshdRun(sys, opts.sshd, ['-T', ...sshdFileArgs(paths, file)]);
  if (r.code !== 0) {
    const reason = firstLine(r.stderr.trim() || r.stdout.trim());
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      file || !beforeChanges
        ? `sshd -T rejects the ${file ? 'candidate' : 'new'} sshd configuration: ${reason}`
        : `refusing to install: sshd rejects the configuration on disk (the running sshd may still use an older one), so nothing was changed: ${reason}; fix it first (check with sshd -t)`,
    );
  }
  return parseSshdT(r.stdout);
}

/** `sshd -T -f file [-C spec]` for one probe; the candidate's file names are shown as the live ones. */
function probeSshdT(
  sys: HostSystem,
  opts: SshdOptions,
  file: string,
  probe: SshdProbe,
  shown: [string, string][],
): Map<string, string> {
  const r = sshdRun(sys, opts.sshd, ['-T', '-f', file, ...(probe.spec ? ['-C', probe.spec] : [])]);
  if (r.code !== 0) {
    let reason = firstLine(r.stderr.trim() || r.stdout.trim());
    for (const [from, to] of shown) reason = reason.split(from).join(to);
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      `refusing to install: sshd -T rejects the configuration for ${probe.label}, so nothing was changed: ${reason}`,
    );
  }
  return parseSshdT(r.stdout);
}

/**
 * What sshd accepts without keymaker's lines (see "authentication strength" in sshd-config.ts):
 * sshd_config with keymaker's block taken out and its drop-in read as empty, asked once per probe.
 */
function gatherBaseline(
  sys: HostSystem,
  opts: InstallRunOptions,
  files: Record<string, FileState | undefined>,
  dirEntries: string[],
): InstallSnapshot['baseline'] {
  const { paths } = opts;
  const main = files[paths.sshdConfig];
  if (!main) return undefined;
  const mainText = main.content.toString('utf8');
  const texts = [
    mainText,
    ...dirEntries
      .filter((n) => n !== path.basename(paths.sshdDropIn))
      .map((n) => sys.readFile(path.join(paths.sshdConfigDir, n))?.content.toString('utf8') ?? ''),
  ];
  const probes = sshdProbes(
    texts,
    sys.readFile('/etc/passwd')?.content.toString('utf8'),
    sys.readFile('/etc/group')?.content.toString('utf8'),
  );
  // Nothing of keymaker's in place (a first install): the live files are the baseline, no temp copy needed.
  if (!files[paths.sshdDropIn] && removeSshdBlocks(mainText, paths).text === mainText) {
    return probes.map((probe) => ({ probe, settings: probeSshdT(sys, opts, paths.sshdConfig, probe, []) }));
  }
  const dir = path.dirname(paths.sshdConfig);
  const tag = sys.randomName();
  const tempMain = path.join(dir, `.keymaker-candidate-${tag}`);
  const emptyDropIn = path.join(dir, `.keymaker-candidate-${tag}.conf`);
  try {
    sys.writeFileAtomic(emptyDropIn, '', 0o600, 0, 0);
    sys.writeFileAtomic(tempMain, baselineMain(mainText, dirEntries, paths, emptyDropIn), 0o600, 0, 0);
    return probes.map((probe) => ({
      probe,
      settings: probeSshdT(sys, opts, tempMain, probe, [[tempMain, paths.sshdConfig]]),
    }));
  } finally {
    sys.removeFile(tempMain);
    sys.removeFile(emptyDropIn);
  }
}

/**
 * Validates the sshd configuration keymaker is about to switch to, before
 * anything is switched: a temp copy of sshd_config in /etc/ssh whose drop-in
 * Include is expanded with the new drop-in in its sorted place (or the main
 * config with the block inserted), checked with `sshd -t -f` and `sshd -T -f`.
 */
function validateCandidate(
  sys: HostSystem,
  opts: InstallRunOptions,
  plan: InstallPlan,
  snapshot: InstallSnapshot,
): void {
  const { paths } = opts;
  const dir = path.dirname(paths.sshdConfig);
  const tag = sys.randomName();
  const tempMain = path.join(dir, `.keymaker-candidate-${tag}`);
  const tempDropIn = path.join(dir, `.keymaker-candidate-${tag}.conf`);
  const planned = (p: string) => plan.files.find((f) => f.path === p)?.content.toString('utf8');
  const mainText = planned(paths.sshdConfig) ?? snapshot.files[paths.sshdConfig]!.content.toString('utf8');
  const temps: string[] = [];
  try {
    let candidate = mainText;
    if (plan.sshd.mode === 'drop-in') {
      sys.writeFileAtomic(tempDropIn, planned(paths.sshdDropIn)!, 0o600, 0, 0);
      temps.push(tempDropIn);
      candidate = candidateMainForDropIn(
        mainText,
        plan.sshd.include!,
        snapshot.sshdConfigDirEntries,
        paths,
        tempDropIn,
      );
    }
    sys.writeFileAtomic(tempMain, candidate, 0o600, 0, 0);
    temps.push(tempMain);
    const check = sshdRun(sys, opts.sshd, ['-t', '-f', tempMain]);
    if (check.code !== 0) {
      const reason = firstLine(
        (check.stderr.trim() || check.stdout.trim())
          .split(tempMain)
          .join(paths.sshdConfig)
          .split(tempDropIn)
          .join(paths.sshdDropIn),
      );
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `refusing to install: sshd -t rejects the configuration with keymaker's settings, so nothing was changed: ${reason}`,
      );
    }
    const problems = effectiveSettingProblems(
      effectiveSshdConfig(sys, opts, paths, tempMain),
      expectedEffectiveSettings(paths, opts.user, plan.sshd.authenticationMethods),
    );
    if (problems.length > 0) {
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `refusing to install: with keymaker's settings in place sshd would still use ${problems.join('; ')}; an earlier line of the sshd configuration sets it first (sshd keeps the first value it reads): remove that line, then run install again`,
      );
    }
    // Never weaken authentication: the same probes as the baseline, on the candidate.
    for (const { probe, settings } of snapshot.baseline ?? []) {
      const after = probeSshdT(sys, opts, tempMain, probe, [
        [tempMain, paths.sshdConfig],
        [tempDropIn, paths.sshdDropIn],
      ]);
      const reasons = authenticationWeakenings(settings, after);
      if (reasons.length > 0) {
        throw new HostError(
          'WEAKER_AUTHENTICATION',
          `refusing to install: keymaker's sshd settings would weaken authentication for ${probe.label}, so nothing was changed: ${reasons.join('; ')}`,
          { details: { probe: probe.spec ?? null, reasons } },
        );
      }
    }
  } finally {
    for (const t of temps) sys.removeFile(t);
  }
}

/** After the switch: the live config as sshd will read it at reload. */
function validateLive(
  sys: HostSystem,
  opts: SshdOptions & { user?: string; authenticationMethods?: string },
  paths: HostPaths,
): void {
  const check = sshdRun(sys, opts.sshd, ['-t', ...sshdFileArgs(paths)]);
  if (check.code !== 0)
    throw new HostError(
      'SSHD_CONFIG_INVALID',
      `sshd -t rejects the new sshd configuration: ${firstLine(check.stderr.trim())}`,
    );
  if (opts.user) {
    const problems = effectiveSettingProblems(
      effectiveSshdConfig(sys, opts, paths, undefined, false),
      expectedEffectiveSettings(paths, opts.user, opts.authenticationMethods),
    );
    if (problems.length > 0)
      throw new HostError(
        'SSHD_CONFIG_INVALID',
        `keymaker's sshd settings did not take effect: ${problems.join('; ')}`,
      );
  }
}

/** Reloads sshd through what the host has; a stopped sshd is not an error. Returns what happened. */
export function reloadSshd(sys: HostSystem, opts: SshdOptions, paths: HostPaths): string {
  if (opts.reload === 'none') return 'sshd not reloaded (--reload none): run your usual sshd reload';
  if (opts.reload === 'systemd' || (opts.reload === 'auto' && isSystemdRunning(sys))) {
    for (const unit of ['ssh.service', 'sshd.service']) {
      if (sys.run(['systemctl', 'is-active', '--quiet', unit]).code !== 0) continue;
      const r = sys.run(['systemctl', 'reload', unit]);
      if (r.code !== 0)
        throw new HostError('SYSTEM_COMMAND_FAILED', `systemctl reload ${unit} failed: ${firstLine(r.stderr.trim())}`);
      return `reloaded sshd (systemctl reload ${unit})`;
    }
    return 'sshd is not running (no active ssh/sshd unit); the settings apply when it starts';
  }
  if (opts.reload === 'service') {
    for (const name of ['ssh', 'sshd']) {
      if (!sys.stat(`/etc/init.d/${name}`)) continue;
      const r = sys.run(['service', name, 'reload']);
      if (r.code !== 0)
        throw new HostError(
          'SYSTEM_COMMAND_FAILED',
          `service ${name} reload failed: ${firstLine(r.stderr.trim() || r.stdout.trim())}`,
        );
      return `reloaded sshd (service ${name} reload)`;
    }
    throw new HostError('SYSTEM_COMMAND_FAILED', 'no /etc/init.d/ssh or /etc/init.d/sshd for --reload service');
  }
  let pidFile = opts.sshdPidFile;
  if (!pidFile) {
    try {
      pidFile = effectiveSshdConfig(sys, opts, paths).get('pidfile');
    } catch {
      /* validated elsewhere */
    }
    pidFile ??= '/run/sshd.pid';
  }
  const text = sys.readFile(pidFile)?.content.toString('utf8').trim() ?? '';
  const pid = /^\d+$/.test(text) ? Number(text) : undefined;
  if (pid === undefined || !sys.processAlive(pid) || sys.processName(pid) !== 'sshd') {
    if (opts.reload === 'pidfile' && opts.sshdPidFile)
      throw new HostError('SYSTEM_COMMAND_FAILED', `no running sshd with the pid in ${pidFile}`);
    return `sshd is not running (no live sshd pid in ${pidFile}); the settings apply when it starts`;
  }
  sys.signal(pid, 'SIGHUP');
  // sshd re-executes itself with the same pid; a config it cannot load makes it exit.
  for (let i = 0; i < 10; i++) {
    sys.sleep(100);
    if (!sys.processAlive(pid)) {
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `sshd (pid ${pid}) exited after SIGHUP; check its log and start it again`,
      );
    }
  }
  return `reloaded sshd (SIGHUP to pid ${pid} from ${pidFile})`;
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
    journal,
    bundle: bundle.content,
    credentials,
  };
}

function validateCron(sys: HostSystem, plan: InstallPlan, paths: HostPaths, log: InstallLog): void {
  const file = plan.files.find((f) => f.path === paths.cronFile);
  if (!file) return;
  // Only Debian's crontab has the -n dry run; cronie's -n sets a cluster host name instead.
  const help = sys.run(['crontab', '-h']);
  if (help.code === 127) {
    log(`warning: crontab not found: is cron installed? The group sync in ${paths.cronFile} runs only under cron`);
    return;
  }
  if (!/-n\s.*dry run/.test(help.stdout + help.stderr)) return;
  const r = sys.run(['crontab', '-n', '-'], { input: cronLinesForSyntaxCheck(file.content.toString('utf8')) });
  if (r.code !== 0)
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `refusing to install: crontab -n rejects the group sync schedule: ${firstLine(r.stderr.trim())}`,
    );
}

function nologinShell(sys: HostSystem): string {
  return ['/usr/sbin/nologin', '/sbin/nologin', '/bin/false'].find((p) => sys.stat(p)?.type === 'file') ?? '/bin/false';
}

/**
 * `keymaker install`: plan, check (safe paths, sshd -t on the candidate, cron
 * syntax), then apply in order with a journal; any failure restores every file
 * this run touched, byte for byte, and says what failed.
 */
export function runInstall(sys: HostSystem, opts: InstallRunOptions, log: InstallLog): InstallResult {
  const { paths } = opts;
  requireRoot(sys, 'install');
  const { journal: previous, state: journalState } = readJournal(sys, paths);
  if (!opts.dryRun) removeStrayTemps(sys, paths, previous, log);
  const snapshot = gatherSnapshot(sys, opts, previous);
  const plan = planInstall(snapshot, opts);
  assertSafePaths(sys, plan.safePathTargets);
  validateCandidate(sys, opts, plan, snapshot);
  validateCron(sys, plan, paths, log);
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

  const touched: { path: string; before: FileState | undefined }[] = [];
  const createdDirs: { path: string; recursive: boolean }[] = [];
  let userCreated = false;
  let timerEnabled = false;
  let reloaded = false;
  let step = 'starting';
  const journal: InstallJournal = {
    version: 1,
    user: { name: opts.user, created: previous?.user.name === opts.user && previous.user.created },
    files: [],
    dirs: [...(previous?.dirs ?? [])],
    systemdTimer: previous?.systemdTimer,
  };

  const ensureDir = (p: string, mode: number, uid: number, gid: number, recursive: boolean) => {
    if (sys.stat(p)?.type === 'dir') return;
    ensureDir(path.dirname(p), 0o755, 0, 0, false);
    sys.mkdir(p, mode, uid, gid);
    createdDirs.push({ path: p, recursive });
    if (!journal.dirs.some((d) => d.path === p)) journal.dirs.push({ path: p, recursive });
  };

  try {
    if (plan.user.create) {
      step = `creating the user ${opts.user}`;
      const shell = nologinShell(sys);
      const r = sys.run([
        'useradd',
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        shell,
        '--comment',
        'Keymaker SSH key lookup',
        opts.user,
      ]);
      if (r.code !== 0)
        throw new HostError('SYSTEM_COMMAND_FAILED', `useradd ${opts.user} failed: ${firstLine(r.stderr.trim())}`);
      userCreated = true;
      journal.user.created = true;
      log(`created the locked system user ${opts.user} (shell ${shell}, no home)`);
    }

    step = 'creating directories';
    for (const d of plan.dirs) {
      const { uid, gid } = ids(sys, d.owner, d.group);
      ensureDir(d.path, d.mode, uid, gid, d.recursive);
    }
    for (const f of plan.files) ensureDir(path.dirname(f.path), 0o755, 0, 0, false);

    // Journal first: the originals of everything about to change are on disk before it changes.
    const previousEntry = new Map((previous?.files ?? []).map((f) => [f.path, f]));
    journal.files = plan.files.map((f): JournalFile => ({
      path: f.path,
      // null ("did not exist") from the first install must survive a re-install
      original: previousEntry.has(f.path) ? previousEntry.get(f.path)!.original : originalOf(snapshot.files[f.path]),
      installedSha256: sha256(f.content),
      kind: f.kind,
    }));
    const pendingRestores = plan.restores.map((p) => previousEntry.get(p)!);
    step = 'writing the install state';
    writeJournal(sys, paths, { ...journal, files: [...journal.files, ...pendingRestores] });

    let sshdChanged = false;
    const write = (f: PlannedFile) => {
      const { uid, gid } = ids(sys, f.owner, f.group);
      const before = snapshot.files[f.path];
      if (sameFile(before, f.content, f.mode, uid, gid)) return;
      step = `writing ${f.path}`;
      // Atomic: a failed write leaves the file as it was, so only successful writes need undoing.
      restoreFile(sys, paths, f.path, { content: f.content, mode: f.mode, uid, gid });
      touched.push({ path: f.path, before });
      if (f.path === paths.sshdConfig || f.path === paths.sshdDropIn) sshdChanged = true;
      log(`${before ? 'updated' : 'wrote'} ${f.path} (${f.purpose})`);
    };
    for (const f of plan.files) write(f);
    for (const entry of pendingRestores) {
      step = `restoring ${entry.path}`;
      const before = sys.readFile(entry.path);
      const action = undoAction(sys, entry, paths);
      if (!action) continue;
      restoreFile(sys, paths, entry.path, action.target);
      touched.push({ path: entry.path, before });
      if (entry.path === paths.sshdConfig || entry.path === paths.sshdDropIn) sshdChanged = true;
      log(`${action.target ? 'restored' : 'removed'} ${entry.path} (no longer used)`);
      if (action.note) log(`warning: ${action.note}`);
    }

    step = 'checking the live sshd configuration';
    validateLive(sys, { ...opts, user: opts.user, authenticationMethods: plan.sshd.authenticationMethods }, paths);

    if (plan.schedule.kind === 'systemd' && snapshot.systemdRunning) {
      step = 'enabling the group sync timer';
      for (const argv of [
        ['systemctl', 'daemon-reload'],
        ['systemctl', 'enable', '--now', SYNC_TIMER],
      ]) {
        const r = sys.run(argv);
        if (r.code !== 0)
          throw new HostError('SYSTEM_COMMAND_FAILED', `${argv.join(' ')} failed: ${firstLine(r.stderr.trim())}`);
      }
      timerEnabled = journal.systemdTimer !== SYNC_TIMER;
      journal.systemdTimer = SYNC_TIMER;
    } else if (plan.schedule.kind === 'systemd') {
      log('warning: systemd is not running; the timer is installed but not enabled');
    } else if (journal.systemdTimer && snapshot.systemdRunning) {
      sys.run(['systemctl', 'disable', '--now', journal.systemdTimer]);
      journal.systemdTimer = undefined;
    }

    step = 'reloading sshd';
    const reload = sshdChanged ? reloadSshd(sys, opts, paths) : 'sshd configuration unchanged; no reload needed';
    reloaded = sshdChanged;
    log(reload);

    step = 'writing the install state';
    writeJournal(sys, paths, journal);
    return { dryRun: false, plan: describeInstallPlan(plan), changed: touched.map((t) => t.path), userCreated, reload };
  } catch (error) {
    const problems: string[] = [];
    const attempt = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        problems.push(`${what}: ${firstLine((e as Error).message)}`);
      }
    };
    for (const t of [...touched].reverse())
      attempt(`restoring ${t.path}`, () => restoreFile(sys, paths, t.path, t.before));
    if (timerEnabled) attempt('disabling the timer', () => void sys.run(['systemctl', 'disable', '--now', SYNC_TIMER]));
    if (reloaded) attempt('reloading sshd', () => void reloadSshd(sys, opts, paths));
    attempt('restoring the install state', () => restoreState(sys, journalPath(paths), journalState));
    for (const d of [...createdDirs].reverse())
      attempt(`removing ${d.path}`, () => (d.recursive ? sys.removeTree(d.path) : void sys.removeEmptyDir(d.path)));
    if (userCreated) attempt(`removing the user ${opts.user}`, () => void sys.run(['userdel', opts.user]));
    const what = isKeymakerError(error) ? error.message : firstLine(String((error as Error)?.message ?? error));
    const undo =
      problems.length === 0 ? 'every file was restored as it was' : `restoring failed too (${problems.join('; ')})`;
    const code = isKeymakerError(error) ? error.code : 'SYSTEM_COMMAND_FAILED';
    throw new HostError(code, `install failed while ${step}: ${what.replace(/^refusing to install: /, '')}; ${undo}`, {
      cause: error,
    });
  }
}

// ---------------------------------------------------------------- uninstall

interface UndoAction {
  entry: JournalFile;
  /** undefined = delete the file. */
  target: FileState | undefined;
  note?: string;
}

function undoAction(sys: HostSystem, entry: JournalFile, paths: HostPaths): UndoAction | undefined {
  const current = sys.readFile(entry.path);
  const original: FileState | undefined = entry.original
    ? {
        content: Buffer.from(entry.original.base64, 'base64'),
        mode: entry.original.mode,
        uid: entry.original.uid,
        gid: entry.original.gid,
      }
    : undefined;
  if (!current && !original) return undefined;
  if (!current) return { entry, target: original };
  const unchanged = sha256(current.content) === entry.installedSha256;
  // Somebody else's file: take out only keymaker's lines and keep every other byte, its
  // mode and owner, whatever happened to it since the first install (the journal's
  // original predates every later edit and every later install, so it is not written back).
  if (entry.kind === 'edited') {
    const text = current.content.toString('utf8');
    const removed = entry.path === paths.pamSshd ? removePamHook(text, paths) : removeSshdBlocks(text, paths);
    if (removed.text === text) return undefined;
    const notes = removed.notes.map((n) => `${entry.path}: ${n}`);
    const asBefore = !!original && Buffer.from(removed.text).equals(original.content);
    if (!unchanged && !asBefore && notes.length === 0)
      notes.push(`${entry.path} was edited after install: removed only keymaker's lines, kept the rest`);
    return {
      entry,
      target: { ...current, content: Buffer.from(removed.text) },
      note: notes.length > 0 ? notes.join('; ') : undefined,
    };
  }
  if (unchanged) return { entry, target: original };
  return {
    entry,
    target: original,
    note: `${entry.path} was edited after install; ${original ? 'restored the original' : 'removed it'} anyway`,
  };
}

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
  const actions = journal.files.map((e) => ({ entry: e, action: undoAction(sys, e, paths) }));
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
  const apply = ({ entry, action }: { entry: JournalFile; action: UndoAction | undefined }) => {
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
