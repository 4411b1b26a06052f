import { exitCodeFor, formatError, KeymakerError } from '@keymaker/core';

/** The one place a command's failure becomes a message and an exit code. */
export async function runCommand(debug: boolean | undefined, body: () => Promise<number | void>): Promise<void> {
  try {
    const code = await body();
    process.exitCode = code ?? 0;
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    if (debug) {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      const cause = error instanceof KeymakerError ? (error.cause as Error | undefined) : undefined;
      if (cause?.stack) process.stderr.write(`caused by: ${cause.stack}\n`);
    }
    process.exitCode = exitCodeFor(error);
  }
}
