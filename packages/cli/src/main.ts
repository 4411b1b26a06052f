import { createRequire } from 'node:module';
import type YargsFactory from 'yargs';
import { EXIT_CODES } from '@keymaker/core';
import pkg from '../package.json';
import { GLOBAL_OPTIONS, type Cli, type Commands } from './context';
import { registerKeyCommands } from './commands/index';
import { registerConfigureCommand } from './commands/configure';
import { registerSyncCommand } from './commands/sync';
import { registerInstallCommands } from './commands/install';
import { registerStatusCommand } from './commands/status';
import { registerAgentCommand } from './commands/agent';
import { registerCompletionCommand } from './commands/completion';
import { renderManPage } from './man';
import { documentCommands, groupHelpText, helpWidth, usageErrorLine, type Documented } from './help';

// yargs' ESM build wraps help character by character (cliui's ESM fallback: "connect tim\neout");
// its CommonJS build wraps at words. __filename is tsup's ESM shim in the bundle.
const yargs = createRequire(__filename)('yargs') as typeof YargsFactory;

/** Each group registers its commands; add a group with one line here. */
const COMMAND_GROUPS: Array<(commands: Commands) => Commands> = [
  registerKeyCommands,
  registerConfigureCommand,
  registerSyncCommand,
  registerInstallCommands,
  registerStatusCommand,
  registerAgentCommand,
  registerCompletionCommand,
];

const SUMMARY = 'SSH logins on AWS EC2, backed by IAM users, keys and groups';
const DESCRIPTION = `keymaker ${pkg.version}: ${SUMMARY}.`;

export interface CliOptions {
  /** Help width in columns (default: the terminal's, at most 100; 80 when not a TTY). */
  width?: number;
}

export function buildCli(argv: string[], options: CliOptions = {}): Cli {
  return createCli(argv, options).cli;
}

/** The yargs instance and the registry of its documented commands (for grouped help and the man page). */
export function createCli(argv: string[], options: CliOptions = {}): { cli: Cli; docs: Documented; width: number } {
  const width = options.width ?? helpWidth();
  const cli = yargs(argv)
    .scriptName('keymaker')
    .usage(`${DESCRIPTION}\n\nUsage: keymaker <command> [options]`)
    .options(GLOBAL_OPTIONS)
    .version(pkg.version)
    .help()
    .alias('help', 'h')
    .strict()
    // An option given twice takes its last value, as in ssh and most CLIs (scripts append overrides).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .recommendCommands()
    .wrap(width)
    .fail((message, error, y) => {
      if (error) throw error;
      // Runs only while parsing, when `docs` is set.
      process.stderr.write(`${usageErrorLine(message, docs.active())}\n`);
      void y;
      process.exit(EXIT_CODES.USAGE);
    });
  const { cli: withCommands, docs } = documentCommands(cli, COMMAND_GROUPS);
  return { cli: withCommands.demandCommand(1, 'name a command'), docs, width };
}

/** `keymaker help CMD ...` is `keymaker CMD ... --help` (as in gh and kubectl). */
export function rewriteHelpCommand(argv: string[]): string[] {
  if (argv[0] !== 'help') return argv;
  return [...argv.slice(1), '--help'];
}

/** The help text for an argument list ending in --help (top-level help is grouped by kind of command). */
export async function helpText(argv: string[], options: CliOptions = {}): Promise<string> {
  const { cli, docs, width } = createCli(argv, options);
  const output = await new Promise<string>((resolve, reject) => {
    void cli.parse(argv, {}, (error, _argv, text) => (error ? reject(error) : resolve(text)));
  });
  return groupHelpText(output, docs.commands, width);
}

/** keymaker(1): the top-level help and every command's help, in roff (written to dist/keymaker.1 at build time). */
export async function manPage(width = 68): Promise<string> {
  const { docs } = createCli([], { width });
  const commandHelp: Record<string, string> = {};
  for (const command of docs.commands) commandHelp[command.name] = await helpText([command.name, '--help'], { width });
  return renderManPage({
    version: pkg.version,
    summary: SUMMARY,
    topHelp: await helpText(['--help'], { width }),
    commands: docs.commands,
    commandHelp,
  });
}

function isHelpRequest(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h') || argv[argv.length - 1] === 'help';
}

export async function main(rawArgv: string[]): Promise<void> {
  const argv = rewriteHelpCommand(rawArgv);
  if (argv.length === 0) {
    process.stderr.write(`${await helpText(['--help'])}\n`);
    process.exitCode = 1;
    return;
  }
  if (isHelpRequest(argv) && !argv.includes('--get-yargs-completions')) {
    process.stdout.write(`${await helpText(argv)}\n`);
    return;
  }
  await buildCli(argv).parseAsync();
}
