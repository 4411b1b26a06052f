// What each kind of step does to the machine, and how it is undone: one case per kind of InstallStep.
// The applier (apply-steps.ts) calls performStep and keeps the undo it returns until the run succeeds.
import { firstLine, HostError } from '@keymaker/core';
import type { HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import type { StepResult } from './apply-steps';
import { ids, restoreState, writeJournal, writeThrough } from './file-ops';
import { journalPath } from './journal';
import { assertSafePaths } from '../system/root-owned';
import { reloadSshd, sshdFileArgs, sshdRun, validateCandidate, validateLive, type SshdOptions } from './sshd-checks';
import type { InstallStep, ValidateStep } from './steps';
import { cronLinesForSyntaxCheck } from './templates';

export interface StepContext {
  sys: HostSystem;
  paths: HostPaths;
  sshd: SshdOptions;
  log: (line: string) => void;
  /** A problem that does not stop the run (install logs it at once; uninstall lists it at the end). */
  warn: (line: string) => void;
}

function run(sys: HostSystem, argv: string[]): void {
  const r = sys.run(argv);
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
        { ...ctx.sshd, user: step.user, authenticationMethods: step.authenticationMethods },
        ctx.paths,
      );
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

export function performStep(ctx: StepContext, step: InstallStep): StepResult {
  const { sys, paths, log } = ctx;
  switch (step.kind) {
    case 'validate':
      validate(ctx, step);
      return {};
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
    case 'reloadSshd': {
      const message = reloadSshd(sys, ctx.sshd, paths);
      log(message);
      // No undo: the planner puts the reload last, so no failure comes after it (a reload undone in
      // reverse order would run before the files are back, reading the new configuration again).
      return { message };
    }
  }
}
