#!/usr/bin/env node
import { hostCommandName, LEAN_FROM_LAUNCHER } from './host-command-names';
// Commands run by sshd and PAM take the lean host entry:
// no yargs, no command modules. Everything else goes through yargs.
const argv = process.argv.slice(2);
const hostCommand = hostCommandName(argv[0]);
// `--help`/`-h` always goes to yargs, which has the help text.
const wantsHelp = argv.includes('--help') || argv.includes('-h');
// Flags other than --debug (--profile, --region, --timeout, --config) need yargs; sshd and pam_exec pass none.
const leanArgs = argv.slice(1).every((arg) => !arg.startsWith('-') || arg === '--debug');
if (hostCommand && LEAN_FROM_LAUNCHER.has(hostCommand) && !wantsHelp && leanArgs) {
  const { main } = await import('./host-entry');
  await main(argv);
} else {
  const { main } = await import('./main');
  await main(argv);
}
