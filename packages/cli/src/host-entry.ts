import { EXIT_CODES, formatError } from '@keymaker/core';
import { DEFAULT_LOOKUP_DEADLINE_MS, runLookup } from '@keymaker/host';

/**
 * The host entry: the commands that sshd, PAM and the sync schedule run.
 * Built as one self-contained file (dist/keymaker-host.js, copied by
 * `keymaker install` to a root-owned path); no yargs, nothing else loaded.
 */
type HostCommand = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, HostCommand> = {
  get_authorized_keys: getAuthorizedKeys,
};
const ALIASES: Record<string, string> = { 'get-authorized-keys': 'get_authorized_keys' };

export function isHostCommand(name: string | undefined): boolean {
  return name !== undefined && (name in COMMANDS || name in ALIASES);
}

async function getAuthorizedKeys(args: string[]): Promise<number> {
  const debug = args.includes('--debug');
  const positional = args.filter((arg) => arg !== '--debug');
  if (positional.length < 1 || positional.length > 2 || positional.some((arg) => arg.startsWith('-'))) {
    process.stderr.write('usage: keymaker get_authorized_keys USER [FINGERPRINT]\n');
    return EXIT_CODES.USAGE;
  }
  const deadlineMs = Number(process.env.KEYMAKER_DEADLINE_MS) || DEFAULT_LOOKUP_DEADLINE_MS;
  return runLookup(
    { user: positional[0]!, fingerprint: positional[1] },
    {
      write: (text) => process.stdout.write(text),
      log: (level, message) => {
        if (debug || level !== 'info') process.stderr.write(`keymaker: ${message}\n`);
      },
    },
    { deadlineMs, aws: { region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION } },
  );
}

/** Runs a host command; `argv` starts with the command name. */
export async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  const command = name ? COMMANDS[ALIASES[name] ?? name] : undefined;
  if (!command) {
    process.stderr.write(`keymaker: unknown host command ${JSON.stringify(name ?? '')}\n`);
    process.exitCode = EXIT_CODES.USAGE;
  } else {
    try {
      process.exitCode = await command(args);
    } catch (error) {
      process.stderr.write(`${formatError(error)}\n`);
      process.exitCode = EXIT_CODES.INTERNAL;
    }
  }
  // Keep-alive sockets must not hold sshd waiting once the answer is out.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit();
}

// Run directly as the installed bundle: `node keymaker-host.mjs COMMAND ARGS...`.
if (process.argv[1] && /keymaker-host\.m?js$/.test(process.argv[1])) {
  void main(process.argv.slice(2));
}
