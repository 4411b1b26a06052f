// What each kind of step does to the machine, and how it is undone: one case per kind of InstallStep.
// The applier (apply-steps.ts) calls performStep and keeps the undo it returns until the run succeeds.
import * as path from 'node:path';
import { firstLine, HostError } from '@keymaker/core';
import type { FileState, HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import type { StepResult } from './apply-steps';
import { agentLaunchArgv, agentLaunchEnv, LAUNCHER_SCRIPT, type AgentLaunchSpec } from './agent-launcher';
import { ids, restoreState, writeJournal, writeThrough } from './file-ops';
import { journalPath } from './journal';
import { assertSafePaths } from '../system/root-owned';
import { isMountPoint } from '../system/mounts';
import { restorePreviousProfile, selectCustomProfile } from './authselect';
import {
  reloadSshd,
  sshdFileArgs,
  sshdRun,
  validateCandidate,
  validateLive,
  validateMatch,
  type SshdOptions,
} from './sshd-checks';
import type { InstallStep, StartAgentStep, ValidateStep } from './steps';
import { checkSudoersCandidate, checkSudoersPolicy } from './sudoers';
import { cronLinesForSyntaxCheck } from './templates';

export interface StepContext {
  sys: HostSystem;
  paths: HostPaths;
  sshd: SshdOptions;
  log: (line: string) => void;
  /** A problem that does not stop the run (install logs it at once; uninstall lists it at the end). */
  warn: (line: string) => void;
}

function run(sys: HostSystem, argv: string[], timeoutMs?: number): void {
  const r = sys.run(argv, timeoutMs === undefined ? undefined : { timeoutMs });
  if (r.code !== 0)
    throw new HostError('SYSTEM_COMMAND_FAILED', `${argv.join(' ')} failed: ${firstLine(r.stderr.trim())}`);
}

function validateCron(ctx: StepContext, step: Extract<ValidateStep, { check: 'cronSyntax' }>): void {
  // Only Debian's crontab has the -n dry run; cronie's -n sets a cluster host name instead.
  const help = ctx.sys.run(['crontab', '-h']);
  if (help.code === 127) {
    ctx.log(`warning: crontab not found: is cron installed? The group sync in ${step.path} runs only under cron`);
    return;
  }
  if (!/-n\s.*dry run/.test(help.stdout + help.stderr)) return;
  const r = ctx.sys.run(['crontab', '-n', '-'], { input: cronLinesForSyntaxCheck(step.content) });
  if (r.code !== 0)
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `refusing to install: crontab -n rejects the group sync schedule: ${firstLine(r.stderr.trim())}`,
    );
}

function validate(ctx: StepContext, step: ValidateStep): void {
  switch (step.check) {
    case 'safePaths':
      return assertSafePaths(ctx.sys, step.targets);
    case 'sshdCandidate':
      return validateCandidate(ctx.sys, ctx.sshd, ctx.paths, step);
    case 'cronSyntax':
      return validateCron(ctx, step);
    case 'sshdLive':
      return validateLive(
        ctx.sys,
        { ...ctx.sshd, user: step.user, authenticationMethods: step.authenticationMethods, expected: step.expected },
        ctx.paths,
      );
    case 'sshdMatch':
      return validateMatch(ctx.sys, ctx.sshd, ctx.paths, step.probes);
    case 'sudoersCandidate':
      return checkSudoersCandidate(ctx.sys, step.path, step.content, step.visudo);
    case 'sudoersLive':
      return checkSudoersPolicy(ctx.sys, step.path, step.visudo);
    case 'sshdWithoutKeymaker': {
      const check = sshdRun(ctx.sys, ctx.sshd.sshd, ['-t', ...sshdFileArgs(ctx.paths)]);
      if (check.code !== 0)
        throw new HostError(
          'SSHD_CONFIG_INVALID',
          `uninstall stopped: with keymaker's settings removed, sshd -t rejects the configuration (${firstLine(check.stderr.trim())}); keymaker's settings are still in place: fix the sshd configuration, then run uninstall again`,
        );
      return;
    }
  }
}

/** Puts back what a path held before this run wrote it (through a symlink when the step wrote through one). */
function fileUndo(ctx: StepContext, p: string, through: boolean): () => void {
  const before = ctx.sys.readFile(p);
  return () => restoreState(ctx.sys, through ? writeThrough(ctx.sys, p) : p, before);
}

/** apt-get's download and unpack of one small package; a mirror that stalls fails the install instead of hanging it. */
const PACKAGE_INSTALL_MS = 300_000;

function sameBytes(a: FileState | undefined, b: FileState | undefined): boolean {
  if (!a || !b) return a === b;
  return a.content.equals(b.content) && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid;
}

/** How long install waits for a detached agent's keys socket to answer. */
const AGENT_READY_MS = 20_000;

function agentPid(sys: HostSystem, pidFile: string): number | undefined {
  const text = sys.readFile(pidFile)?.content.toString('utf8').trim() ?? '';
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
  const pid = Number(text);
  // A recycled pid is somebody else's process: only a node process is ours to stop.
  return sys.processAlive(pid) && sys.processName(pid) === 'node' ? pid : undefined;
}

function stopAgent(sys: HostSystem, pidFile: string, sockets: readonly string[] = []): boolean {
  const pid = agentPid(sys, pidFile);
  if (pid !== undefined) {
    sys.signal(pid, 'SIGTERM');
    for (let waited = 0; sys.processAlive(pid) && waited < 5000; waited += 100) sys.sleep(100);
    if (sys.processAlive(pid)) sys.signal(pid, 'SIGKILL');
  }
  sys.removeFile(pidFile);
  // An agent given its sockets does not remove them; the launcher made them, so this does ('other': a socket).
  for (const socket of sockets) if (sys.lstat(socket)?.type === 'other') sys.removeFile(socket);
  return pid !== undefined;
}

/**
 * Starts `keymaker agent` detached and unprivileged, output appended to the log file, and waits until its keys
 * socket answers GET /status. Root makes both sockets (the userdb one goes in the root-owned /run/systemd/userdb)
 * and the launcher hands them to the agent running as the `keymaker` user with CAP_KILL only (agent-launcher.ts).
 */
function startAgent(ctx: StepContext, step: StartAgentStep): () => void {
  const { sys } = ctx;
  const ids = sys.userIds(step.user);
  if (ids === undefined) throw new HostError('SYSTEM_COMMAND_FAILED', `the user ${step.user} does not exist`);
  const keysGid = sys.groupId(step.keysSocketGroup);
  if (keysGid === undefined)
    throw new HostError('SYSTEM_COMMAND_FAILED', `the group ${step.keysSocketGroup} does not exist`);
  const sockets = [step.userdbSocket, step.keysSocket];
  stopAgent(sys, step.pidFile, sockets);
  const undo = () => void stopAgent(sys, step.pidFile, sockets);
  const spec: AgentLaunchSpec = {
    // fd 3 and 4, in LAUNCH_FD_NAMES' order; owner, group and mode as keymaker-agent(-keys).socket give them.
    sockets: [
      { path: step.userdbSocket, mode: 0o666, uid: 0, gid: 0 },
      { path: step.keysSocket, mode: 0o660, uid: 0, gid: keysGid },
    ],
    argv: agentLaunchArgv({ setpriv: step.setpriv, uid: ids.uid, gid: ids.gid, command: step.command }),
    env: agentLaunchEnv(path.basename(step.userdbSocket), { NODE_EXTRA_CA_CERTS: step.extraCaCerts }),
    exe: step.command[0]!,
    pidFile: step.pidFile,
    logFile: step.logFile,
  };
  const launched = sys.run([step.command[0]!, '-e', LAUNCHER_SCRIPT], {
    input: JSON.stringify(spec),
    timeoutMs: 30_000,
  });
  if (launched.code !== 0) {
    undo();
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `the keymaker agent did not start: ${firstLine(launched.stderr.trim()) || `launcher exit ${launched.code}`}`,
    );
  }
  const status = [
    'curl',
    '-q',
    '-s',
    '--fail',
    '--max-time',
    '1',
    '--unix-socket',
    step.keysSocket,
    'http://localhost/status',
  ];
  for (let waited = 0; ; waited += 100) {
    if (sys.run(status).code === 0) return undo;
    if (agentPid(sys, step.pidFile) === undefined || waited >= AGENT_READY_MS) {
      undo();
      const log = sys.readFile(step.logFile)?.content.toString('utf8').trim().split('\n').slice(-1)[0] ?? '';
      throw new HostError(
        'SYSTEM_COMMAND_FAILED',
        `the keymaker agent did not start: ${log || 'no output'} (see ${step.logFile})`,
      );
    }
    sys.sleep(100);
  }
}

export function performStep(ctx: StepContext, step: InstallStep): StepResult {
  const { sys, paths, log } = ctx;
  switch (step.kind) {
    case 'validate':
      validate(ctx, step);
      return {};
    case 'installPackage': {
      const kept = step.keepFiles.map((p) => ({ path: writeThrough(sys, p), before: sys.readFile(p) }));
      // The package manager's own environment: non-interactive, and no prompt can hang the install.
      run(sys, ['env', 'DEBIAN_FRONTEND=noninteractive', ...step.argv], PACKAGE_INSTALL_MS);
      ctx.log(`installed ${step.package} (${step.argv.join(' ')}); uninstall leaves it installed`);
      for (const { path: p, before } of kept) {
        const after = sys.readFile(p);
        if (sameBytes(before, after)) continue;
        restoreState(sys, p, before);
        ctx.log(`put back ${p} as it was: ${step.package}'s package scripts edited it, keymaker writes its own lines`);
      }
      return {};
    }
    case 'selectAuthselectProfile':
      return { undo: selectCustomProfile(sys, step.profile, log), changed: ['/etc/nsswitch.conf'] };
    case 'restoreAuthselectProfile':
      restorePreviousProfile(sys, step.previous);
      log(`selected the authselect profile ${step.previous.profile} again; removed custom/${step.previous.custom}`);
      return { changed: ['/etc/nsswitch.conf'] };
    case 'createSystemUser': {
      const r = sys.run([
        'useradd',
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        step.shell,
        '--comment',
        step.comment,
        step.name,
      ]);
      if (r.code !== 0)
        throw new HostError('SYSTEM_COMMAND_FAILED', `useradd ${step.name} failed: ${firstLine(r.stderr.trim())}`);
      log(`created the locked system user ${step.name} (shell ${step.shell}, no home)`);
      return { undo: () => run(sys, ['userdel', step.name]) };
    }
    case 'makeDirectory': {
      const { uid, gid } = ids(sys, step.owner, step.group);
      sys.mkdir(step.path, step.mode, uid, gid);
      return { undo: () => void sys.removeEmptyDir(step.path) };
    }
    case 'writeJournal': {
      const undo = fileUndo(ctx, journalPath(paths), false);
      writeJournal(sys, paths, step.journal);
      return { undo };
    }
    case 'writeFile': {
      const { uid, gid } = ids(sys, step.owner, step.group);
      const undo = fileUndo(ctx, step.path, step.writeThrough);
      // Atomic: a failed write leaves the file as it was, so only successful writes need undoing.
      const state = { content: step.content, mode: step.mode, uid, gid };
      restoreState(sys, step.writeThrough ? writeThrough(sys, step.path) : step.path, state);
      log(`${step.existed ? 'updated' : 'wrote'} ${step.path} (${step.purpose})`);
      return { undo, changed: [step.path] };
    }
    case 'restoreFile': {
      const undo = fileUndo(ctx, step.path, step.writeThrough);
      restoreState(sys, step.writeThrough ? writeThrough(sys, step.path) : step.path, step.target);
      log(`${step.target ? 'restored' : 'removed'} ${step.path}${step.reason ? ` (${step.reason})` : ''}`);
      if (step.note) ctx.warn(step.note);
      return { undo, changed: [step.path] };
    }
    case 'enableService':
      run(sys, ['systemctl', 'daemon-reload']);
      run(sys, ['systemctl', 'enable', '--now', step.unit]);
      return step.wasEnabled ? {} : { undo: () => void sys.run(['systemctl', 'disable', '--now', step.unit]) };
    case 'disableService': {
      const r = sys.run(['systemctl', 'disable', '--now', step.unit]);
      if (r.code !== 0) ctx.warn(`systemctl disable --now ${step.unit} failed: ${firstLine(r.stderr.trim())}`);
      return {};
    }
    case 'reloadServiceManager':
      sys.run(['systemctl', 'daemon-reload']);
      return {};
    case 'removeFile': {
      const undo = fileUndo(ctx, step.path, false);
      sys.removeFile(step.path);
      return { undo };
    }
    case 'removeDirectory':
      if (!sys.stat(step.path)) return {};
      if (step.recursive) sys.removeTree(step.path);
      else if (!sys.removeEmptyDir(step.path)) {
        ctx.warn(`left ${step.path}: it holds files keymaker did not write`);
        return {};
      }
      return { changed: [step.path] };
    case 'removeSystemUser': {
      if (!sys.userIds(step.name)) return {};
      const r = sys.run(['userdel', step.name]);
      if (r.code !== 0) {
        ctx.warn(`userdel ${step.name} failed (${firstLine(r.stderr.trim())}); remove it by hand`);
        return {};
      }
      log(`removed the user ${step.name}`);
      return { message: 'removed' };
    }
    case 'startAgent': {
      const undo = startAgent(ctx, step);
      log(
        `started the keymaker agent as ${step.user} (pid ${agentPid(sys, step.pidFile) ?? '?'}, log ${step.logFile}); systemd is not running, so nothing will restart it if it stops: run "keymaker install --mode agent" again, or run "keymaker agent" under a supervisor`,
      );
      return { undo };
    }
    case 'stopAgent':
      if (stopAgent(sys, step.pidFile, step.sockets)) log('stopped the keymaker agent');
      if (step.logFile && sys.lstat(step.logFile)?.type === 'file') sys.removeFile(step.logFile);
      return {};
    case 'mountFilesystem': {
      const mounted = () => isMountPoint((p) => sys.stat(p), step.mountPoint);
      if (mounted()) {
        log(`${step.mountPoint} is mounted already`);
        return {};
      }
      run(sys, ['mount', step.mountPoint]);
      if (!mounted())
        throw new HostError(
          'SYSTEM_COMMAND_FAILED',
          `mount ${step.mountPoint} reported success but nothing is mounted there`,
        );
      log(`mounted ${step.mountPoint}`);
      return { undo: () => void sys.run(['umount', step.mountPoint]) };
    }
    case 'unmountFilesystem': {
      if (!isMountPoint((p) => sys.stat(p), step.mountPoint)) return {};
      const r = sys.run(['umount', step.mountPoint]);
      if (r.code !== 0)
        ctx.warn(
          `umount ${step.mountPoint} failed (${firstLine(r.stderr.trim())}); unmount it by hand once no one uses it`,
        );
      else log(`unmounted ${step.mountPoint}`);
      return {};
    }
    case 'reloadSshd': {
      const message = reloadSshd(sys, ctx.sshd, paths);
      log(message);
      // No undo: the planner puts the reload last, so no failure comes after it (a reload undone in
      // reverse order would run before the files are back, reading the new configuration again).
      return { message };
    }
  }
}
