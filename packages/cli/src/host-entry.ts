import { EXIT_CODES } from '@keymaker/core';
import {
  agentCommand,
  flushHostCommandSyslog,
  getAuthorizedKeysCommand,
  hostCommandSyslog,
  pamCreateAccountCommand,
  pamEfsHomeCommand,
  parseSyncArgs,
  storeKeyBodiesCommand,
  syncGroupsCommand,
  type HostCommandEnv,
  type HostCommandResult,
} from '@keymaker/host';
import { hostCommandName, type HostCommandName } from './host-command-names';
import { runBoundary } from './run';

/**
 * The host entry: the commands that sshd, PAM and the sync schedule run.
 * Built as one self-contained file (dist/keymaker-host.js, copied by
 * `keymaker install` to a root-owned path); no yargs, nothing else loaded.
 * Each reads /etc/keymaker/config.json, not the environment. Each goes
 * through the one command boundary (run.ts), as the yargs commands do;
 * this entry makes the run's syslog writer and flushes it after.
 */
type HostCommand = (args: string[], env: HostCommandEnv) => Promise<HostCommandResult>;

const COMMANDS: Record<HostCommandName, HostCommand> = {
  get_authorized_keys: (args, env) => getAuthorizedKeysCommand(args, env),
  // pam_exec passes PAM_USER, PAM_RHOST, PAM_TYPE in the environment; no arguments.
  pam_create_account: (args, env) =>
    args.length === 0 ? pamCreateAccountCommand(process.env, env) : usage('pam_create_account'),
  // pam_exec in the session stage when homes live on EFS: PAM_USER, PAM_TYPE in the environment.
  pam_efs_home: (args, env) => (args.length === 0 ? pamEfsHomeCommand(process.env, env) : usage('pam_efs_home')),
  // The compat session hook's detached worker (pam_create_account in the session stage starts it), as root.
  store_key_bodies: (args, env) => storeKeyBodiesCommand(args, env),
  // Agent mode's resident service, as its systemd unit (or install's detached start) runs it from this bundle.
  agent: (args) => {
    const options = parseAgentArgs(args);
    return options
      ? agentCommand(options).then((exitCode) => ({ exitCode }))
      : usage('agent [--config PATH] [--keys-socket-gid GID] [--refresh-seconds 1-3600]');
  },
  sync_groups: (args, env) => {
    const options = parseSyncArgs(args);
    return options ? syncGroupsCommand(options, env) : usage('sync_groups [--dry-run] [--json] [--config PATH]');
  },
};

type AgentArgs = { configFile?: string; keysSocketGid?: number; refreshSeconds?: number };

/** The revocation delay (how often the agent re-checks its users), as `keymaker agent --refresh-seconds` takes it. */
const isRefreshSeconds = (value: string) => /^[1-9][0-9]{0,3}$/.test(value) && Number(value) <= 3600;

function parseAgentArgs(args: string[]): AgentArgs | undefined {
  const options: AgentArgs = {};
  for (let i = 0; i < args.length; i += 2) {
    const value = args[i + 1];
    if (value === undefined) return undefined;
    if (args[i] === '--config') options.configFile = value;
    else if (args[i] === '--keys-socket-gid' && /^[0-9]{1,10}$/.test(value)) options.keysSocketGid = Number(value);
    else if (args[i] === '--refresh-seconds' && isRefreshSeconds(value)) options.refreshSeconds = Number(value);
    else return undefined;
  }
  return options;
}

function stderrOf(env: HostCommandEnv): (text: string) => void {
  return env.stderr ?? ((text: string) => process.stderr.write(text));
}

async function usage(text: string): Promise<HostCommandResult> {
  return { exitCode: EXIT_CODES.USAGE, stderr: [`usage: keymaker ${text}`] };
}

/**
 * Runs a host command and returns its exit code; `argv` starts with the command name. `env`: from
 * the yargs CLI and tests. `debug`: stack traces on a throw (default: a --debug argument).
 */
export async function runHostCommand(
  argv: string[],
  env: HostCommandEnv = {},
  debug = argv.includes('--debug'),
): Promise<number> {
  const [spelling, ...args] = argv;
  const name = hostCommandName(spelling);
  if (!name) {
    stderrOf(env)(`keymaker: unknown host command ${JSON.stringify(spelling ?? '')}\n`);
    return EXIT_CODES.USAGE;
  }
  const syslog = env.syslog ?? hostCommandSyslog();
  try {
    return await runBoundary(() => COMMANDS[name](args, { ...env, syslog }), {
      debug,
      stderr: env.stderr,
      stdout: env.stdout,
    });
  } finally {
    await flushHostCommandSyslog(syslog, stderrOf(env));
  }
}

/** Ends the process once stdout is written: keep-alive sockets must not hold sshd waiting once the answer is out. */
export async function exitWhenWritten(): Promise<void> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit();
}

/** The bundle's main: runs a host command, sets the exit code, exits. */
export async function main(argv: string[], env: HostCommandEnv = {}): Promise<void> {
  process.exitCode = await runHostCommand(argv, env);
  await exitWhenWritten();
}

// Run directly as the installed bundle: `node keymaker-host.mjs COMMAND ARGS...`.
if (process.argv[1] && /keymaker-host\.m?js$/.test(process.argv[1])) {
  void main(process.argv.slice(2));
}
