import type { Commands } from '../context';

/** `keymaker sync_groups`: the same code, and the same argument parser, the schedule runs through the host entry. */
export function registerSyncCommand(commands: Commands): Commands {
  return commands.command(
    ['sync_groups', 'sync-groups'],
    'Make the Linux groups match the IAM groups with the prefix (run as root; cron/systemd run it on schedule)',
    (y) =>
      y
        .option('dry-run', { type: 'boolean', describe: 'print what would change, change nothing' })
        .option('config', { type: 'string', describe: 'host config file (default /etc/keymaker/config.json)' }),
    async (args) => {
      // The lean entry's parser (parseSyncArgs) reads the options, here as on the schedule: one parse of them.
      const { runHostCommand } = await import('../host-entry');
      const argv = ['sync_groups', ...(args['dry-run'] ? ['--dry-run'] : []), ...(args.json ? ['--json'] : [])];
      if (typeof args.config === 'string') argv.push(`--config=${args.config}`);
      process.exitCode = await runHostCommand(argv, {}, Boolean(args.debug));
    },
  );
}
