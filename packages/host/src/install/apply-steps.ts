// The one applier: runs steps in order, keeps each one's undo, and on any failure undoes what was done in
// reverse order and says what failed. It knows nothing of step kinds: `perform` does one step and returns
// its undo. What survives a crash is the install state the plan's writeJournal steps put on disk.
import { errorForCode, firstLine, isKeymakerError, type KeymakerError } from '@keymaker/core';

export interface StepResult {
  /** Undoes the step; absent when the step changed nothing. */
  undo?: () => void;
  /** Paths the step wrote, restored or removed. */
  changed?: string[];
  /** What happened, for the result (a reload's message). */
  message?: string;
}

export interface StepRunner<S> {
  perform(step: S): StepResult | void;
  /** "writing /etc/pam.d/sshd": what the error says the run was doing. */
  activity(step: S): string;
  /** Whether the step changes the machine; a failure before the first one that does is reported as it is. */
  changes(step: S): boolean;
  /** A failure whose own message already says that everything is as it was (once the rollback succeeded). */
  reportsItself?(step: S, error: unknown): boolean;
}

export interface ApplyOptions {
  /** false: stop at the first failure and leave what was done (uninstall after sshd was switched off). */
  rollBack?: boolean;
}

export interface AppliedStep<S> {
  step: S;
  result: StepResult;
}

/** Applies every step, or none: the run's steps are undone in reverse order when one fails. */
export function applySteps<S>(
  steps: readonly S[],
  runner: StepRunner<S>,
  operation: string,
  { rollBack = true }: ApplyOptions = {},
): AppliedStep<S>[] {
  const done: AppliedStep<S>[] = [];
  let changing = false;
  for (const step of steps) {
    changing ||= runner.changes(step);
    try {
      done.push({ step, result: runner.perform(step) ?? {} });
    } catch (error) {
      if (!changing || !rollBack) throw error; // nothing was changed, or what was done stays
      const problems = undoAll(done);
      if (problems.length === 0 && runner.reportsItself?.(step, error)) throw error;
      throw failure(error, problems, `${operation} failed while ${runner.activity(step)}`);
    }
  }
  return done;
}

/** Undoes every step done, last first; returns what could not be undone. */
function undoAll<S>(done: AppliedStep<S>[]): string[] {
  const problems: string[] = [];
  for (const { result } of [...done].reverse()) {
    if (!result.undo) continue;
    try {
      result.undo();
    } catch (e) {
      problems.push(firstLine(e instanceof Error ? e.message : String(e)));
    }
  }
  return problems;
}

function failure(error: unknown, problems: string[], what: string): KeymakerError {
  const reason = isKeymakerError(error)
    ? error.message
    : firstLine(error instanceof Error ? error.message : String(error));
  const undo =
    problems.length === 0 ? 'every file was restored as it was' : `restoring failed too (${problems.join('; ')})`;
  const code = isKeymakerError(error) ? error.code : 'SYSTEM_COMMAND_FAILED';
  return errorForCode(code, `${what}: ${reason.replace(/^refusing to install: /, '')}; ${undo}`, { cause: error });
}
