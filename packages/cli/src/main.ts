import yargs, { type Argv } from 'yargs';
import { EXIT_CODES } from '@keymaker/core';
import pkg from '../package.json';
import type { GlobalOptions } from './context';
import { registerKeyCommands } from './commands/index';
import { registerConfigureCommand } from './commands/configure';
import { registerSyncCommand } from './commands/sync';
import { registerInstallCommands } from './commands/install';

/** Each group registers its commands; add a group with one line here. */
const COMMAND_GROUPS: Array<(cli: Argv<GlobalOptions>) => Argv<GlobalOptions>> = [
  registerKeyCommands,
  registerConfigureCommand,
  registerSyncCommand,
  registerInstallCommands,
];

const DESCRIPTION = `keymaker ${pkg.version}: SSH logins on AWS EC2, backed by IAM users, keys and groups.`;

export function buildCli(argv: string[]): Argv<GlobalOptions> {
  const cli = yargs(argv)
    .scriptName('keymaker')
    .usage(`${DESCRIPTION}\n\nUsage: keymaker <command> [options]`)
    .option('region', { type: 'string', global: true, describe: 'AWS region (default: AWS_REGION / your AWS config)' })
    .option('json', { type: 'boolean', global: true, describe: 'machine-readable output on stdout' })
    .option('debug', { type: 'boolean', global: true, describe: 'show stack traces and details on errors' })
    .version(pkg.version)
    .help()
    .strict()
    .recommendCommands()
    .wrap(null)
    .fail((message, error, y) => {
      if (error) throw error;
      process.stderr.write(`keymaker: ${message}; run "keymaker --help" for usage\n`);
      void y;
      process.exit(EXIT_CODES.USAGE);
    }) as unknown as Argv<GlobalOptions>;
  return COMMAND_GROUPS.reduce((built, register) => register(built), cli).demandCommand(1, 'name a command');
}

export async function main(argv: string[]): Promise<void> {
  const cli = buildCli(argv);
  if (argv.length === 0) {
    cli.showHelp((text) => process.stderr.write(`${text}\n`));
    process.exitCode = 1;
    return;
  }
  await cli.parseAsync();
}
