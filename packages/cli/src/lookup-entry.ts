import { formatError, EXIT_CODES } from '@keymaker/core';
import { runLookup, DEFAULT_LOOKUP_DEADLINE_MS } from '@keymaker/host';

const USAGE = 'usage: keymaker get_authorized_keys USER [FINGERPRINT]';

/** `keymaker get_authorized_keys USER [FINGERPRINT]`, as sshd runs it (%u %f). */
export async function main(args: string[]): Promise<void> {
  const debug = args.includes('--debug');
  const positional = args.filter((arg) => arg !== '--debug');
  if (positional.length < 1 || positional.length > 2 || positional.some((arg) => arg === '--help' || arg === '-h')) {
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = EXIT_CODES.USAGE;
    return;
  }
  const deadlineMs = Number(process.env.KEYMAKER_DEADLINE_MS) || DEFAULT_LOOKUP_DEADLINE_MS;
  try {
    const code = await runLookup(
      { user: positional[0]!, fingerprint: positional[1] },
      {
        write: (text) => process.stdout.write(text),
        log: (level, message) => {
          if (debug || level !== 'info') process.stderr.write(`keymaker: ${message}\n`);
        },
      },
      { deadlineMs, aws: { region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION } },
    );
    process.exitCode = code;
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    process.exitCode = EXIT_CODES.INTERNAL;
  }
  // Open sockets (keep-alive) must not hold sshd waiting past the answer.
  setImmediate(() => process.exit());
}

// Run directly as the installed single-file lookup (`node keymaker-lookup.js USER FP`).
if (process.argv[1] && /keymaker-lookup\.m?js$/.test(process.argv[1])) {
  void main(process.argv.slice(2));
}
