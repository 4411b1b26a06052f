/*
 * The one command boundary, for the yargs commands and the lean host entry alike (so it imports
 * core only: the lean bundle stays free of yargs). A command body returns its exit code (nothing
 * means 0) or throws; a throw becomes core's describeError: formatError's one line on stderr
 * (with --debug, the stack and its cause's too) and exitCodeFor's code.
 */
import { debugLines, describeError } from '@keymaker/core';

export interface BoundaryOptions {
  debug?: boolean;
  /** Default: process.stderr (tests pass a sink). */
  stderr?: (text: string) => void;
}

export async function runBoundary(body: () => Promise<number | void>, options: BoundaryOptions = {}): Promise<number> {
  try {
    return (await body()) ?? 0;
  } catch (error) {
    const stderr = options.stderr ?? ((text: string) => process.stderr.write(text));
    const report = describeError(error);
    stderr(`${report.line}\n`);
    if (options.debug) for (const line of debugLines(error)) stderr(`${line}\n`);
    return report.exitCode;
  }
}

/** A yargs command's handler body through the boundary; its outcome becomes the process's exit code. */
export async function runCommand(debug: boolean | undefined, body: () => Promise<number | void>): Promise<void> {
  process.exitCode = await runBoundary(body, { debug });
}
