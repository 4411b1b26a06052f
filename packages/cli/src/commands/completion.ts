/* `keymaker completion bash|zsh`. */
import type { Commands } from '../context';
import { completionScript } from '../help';

const SHELLS = ['bash', 'zsh'] as const;

/** `keymaker completion bash|zsh`: prints a script that completes commands and options through yargs. */
export function registerCompletionCommand(commands: Commands): Commands {
  return commands.command(
    'completion <shell>',
    'Print a shell completion script (bash or zsh) to stdout',
    (y) => y.positional('shell', { choices: SHELLS, demandOption: true, describe: 'the shell to complete in' }),
    (args) => {
      process.stdout.write(completionScript(args.shell));
    },
  );
}
