/*
 * The one command boundary, for the yargs commands and the lean host entry alike (so it imports
 * core only: the lean bundle stays free of yargs). A command body returns its exit code (nothing
 * means 0) or a CommandResult, or throws. A result's stderr lines and stdout are written as they
 * are; a throw becomes core's describeError: formatError's one line on stderr (with --debug, the
 * stack and its cause's too), then the lines the command attached to it (core's failureOutput),
 * and exitCodeFor's code.
 */
import { debugLines, describeError, failureOutput } from '@keymaker/core';

/** What a command hands the boundary (the host commands' HostCommandResult). */
export interface CommandResult {
  exitCode: number;
  /** Lines for the person at the terminal, in order (the boundary adds the newlines). */
  stderr?: string[];
  /** Data, written after the stderr lines. */
  stdout?: string;
}

export interface BoundaryOptions {
  debug?: boolean;
  /** Default: process.stderr (tests pass a sink). */
  stderr?: (text: string) => void;
  /** Default: process.stdout (tests pass a sink). */
  stdout?: (text: string) => void;
}

export async function runBoundary(
  body: () => Promise<number | void | CommandResult>,
  options: BoundaryOptions = {},
): Promise<number> {
  const stderr = options.stderr ?? ((text: string) => process.stderr.write(text));
  const stdout = options.stdout ?? ((text: string) => process.stdout.write(text));
  const write = (lines: string[] = [], data?: string) => {
    for (const line of lines) stderr(`${line}\n`);
    if (data !== undefined) stdout(data);
  };
  try {
    const outcome = await body();
    if (typeof outcome !== 'object') return outcome ?? 0;
    write(outcome.stderr, outcome.stdout);
    return outcome.exitCode;
  } catch (error) {
    const report = describeError(error);
    stderr(`${report.line}\n`);
    if (options.debug) for (const line of debugLines(error)) stderr(`${line}\n`);
    const more = failureOutput(error);
    write(more.extraLines, more.stdout);
    return report.exitCode;
  }
}

/** A yargs command's handler body through the boundary; its outcome becomes the process's exit code. */
export async function runCommand(
  debug: boolean | undefined,
  body: () => Promise<number | void | CommandResult>,
): Promise<void> {
  process.exitCode = await runBoundary(body, { debug });
}
