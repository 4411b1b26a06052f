import type { Commands } from '../context';
import { runCommand } from '../run';

/** `keymaker status` (alias `doctor`): what a host admin checks first; read-only, exits non-zero on any problem. */
export function registerStatusCommand(commands: Commands): Commands {
  return commands.command(
    ['status', 'doctor'],
    "Check this host: the host config, the credentials' identity, the role config, sshd's settings, the install (read-only)",
    (y) =>
      y
        .option('config', { type: 'string', describe: 'host config file (default /etc/keymaker/config.json)' })
        .option('sshd', { type: 'string', default: '/usr/sbin/sshd', describe: 'the sshd binary used for sshd -T' })
        .option('skip-sshd', { type: 'boolean', describe: 'do not run sshd -T (a host or container without sshd)' }),
    (args) =>
      runCommand(args.debug, async () => {
        const { statusCommand } = await import('@keymaker/host');
        return statusCommand({
          config: typeof args.config === 'string' ? args.config : undefined,
          sshd: args.sshd,
          skipSshd: Boolean(args['skip-sshd']),
          json: Boolean(args.json),
        });
      }),
  );
}
