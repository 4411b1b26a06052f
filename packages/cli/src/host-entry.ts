import { EXIT_CODES, formatError } from '@keymaker/core';
import {
  getAuthorizedKeysCommand,
  pamCreateAccountCommand,
  parseSyncArgs,
  syncGroupsCommand,
  type HostCommandEnv,
} from '@keymaker/host';

/**
 * The host entry: the commands that sshd, PAM and the sync schedule run.
 * Built as one self-contained file (dist/keymaker-host.js, copied by
 * `keymaker install` to a root-owned path); no yargs, nothing else loaded.
 * Each reads /etc/keymaker/config.json, not the environment.
 */
type HostCommand = (args: string[], env: HostCommandEnv) => Promise<number>;

const COMMANDS: Record<string, HostCommand> = {
  get_authorized_keys: (args, env) => getAuthorizedKeysCommand(args, env),
  // pam_exec passes PAM_USER, PAM_RHOST, PAM_TYPE in the environment; no arguments.
  pam_create_account: (args) =>
    args.length === 0 ? pamCreateAccountCommand(process.env) : usage('pam_create_account'),
  sync_groups: (args) => {
    const options = parseSyncArgs(args);
    return options ? syncGroupsCommand(options) : usage('sync_groups [--dry-run] [--json] [--config PATH]');
  },
};
const ALIASES: Record<string, string> = {
  'get-authorized-keys': 'get_authorized_keys',
  'pam-create-account': 'pam_create_account',
  'sync-groups': 'sync_groups',
};

async function usage(text: string): Promise<number> {
  process.stderr.write(`usage: keymaker ${text}\n`);
  return EXIT_CODES.USAGE;
}

export function isHostCommand(name: string | undefined): boolean {
  return name !== undefined && (name in COMMANDS || name in ALIASES);
}

/** Runs a host command; `argv` starts with the command name. `env`: only from the yargs CLI (flags, --config). */
export async function main(argv: string[], env: HostCommandEnv = {}): Promise<void> {
  const [name, ...args] = argv;
  const command = name ? COMMANDS[ALIASES[name] ?? name] : undefined;
  if (!command) {
    process.stderr.write(`keymaker: unknown host command ${JSON.stringify(name ?? '')}\n`);
    process.exitCode = EXIT_CODES.USAGE;
  } else {
    try {
      process.exitCode = await command(args, env);
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
