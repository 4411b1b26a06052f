import { InputError } from '@keymaker/core';
import type { Commands } from '../context';
import { runCommand } from '../run';

function seconds(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3600)
    throw new InputError('INVALID_ARGUMENT', '--refresh-seconds must be a whole number 1-3600');
  return n;
}

/** `keymaker agent`: the host's long-running identity service, in the foreground (for any supervisor). */
export function registerAgentCommand(commands: Commands): Commands {
  return commands.command(
    'agent',
    'Run the keymaker agent in the foreground: IAM users for NSS (userdb) and sshd keys over Unix sockets',
    (y) =>
      y
        .option('config', { type: 'string', describe: 'host config file (default /etc/keymaker/config.json)' })
        .option('userdb-socket', {
          type: 'string',
          describe: 'userdb Varlink socket (default /run/systemd/userdb/io.keymaker.agent)',
        })
        .option('keys-socket', { type: 'string', describe: 'keys socket (default /run/keymaker/keys.sock)' })
        .option('refresh-seconds', {
          type: 'string',
          requiresArg: true,
          describe: 're-check known users every N seconds: the revocation delay (default 300)',
        }),
    (args) =>
      runCommand(args.debug, async () => {
        const refreshSeconds = seconds(args['refresh-seconds']);
        const { agentCommand } = await import('@keymaker/host');
        return agentCommand({
          configFile: typeof args.config === 'string' ? args.config : undefined,
          userdbSocket: typeof args['userdb-socket'] === 'string' ? args['userdb-socket'] : undefined,
          keysSocket: typeof args['keys-socket'] === 'string' ? args['keys-socket'] : undefined,
          refreshSeconds,
        });
      }),
  );
}
