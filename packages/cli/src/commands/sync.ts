import type { Argv } from 'yargs';
import type { GlobalOptions } from '../context';

/** `keymaker sync_groups`: the same code the schedule runs through the host entry. */
export function registerSyncCommand(cli: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return cli.command(
    ['sync_groups', 'sync-groups'],
    'Make the Linux groups match the IAM groups with the prefix (run as root; cron/systemd run it on schedule)',
    (y) =>
      y
        .option('dry-run', { type: 'boolean', describe: 'print what would change, change nothing' })
        .option('config', { type: 'string', describe: 'host config file (default /etc/keymaker/config.json)' }),
    async (args) => {
      const { syncGroupsCommand } = await import('@keymaker/host');
      process.exitCode = await syncGroupsCommand({
        dryRun: Boolean(args['dry-run']),
        json: Boolean(args.json),
        config: typeof args.config === 'string' ? args.config : undefined,
      });
    },
  );
}
