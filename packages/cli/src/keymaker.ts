#!/usr/bin/env node
export {};
// Commands run by sshd, PAM and the sync schedule take the lean host entry:
// no yargs, no command modules. Everything else goes through yargs.
const HOST_COMMANDS = new Set([
  'get_authorized_keys',
  'get-authorized-keys',
  'pam_create_account',
  'pam-create-account',
]);
const argv = process.argv.slice(2);
// `--help`/`-h` always goes to yargs, which has the help text.
const wantsHelp = argv.includes('--help') || argv.includes('-h');
// Flags other than --debug (--profile, --region, --timeout, --config) need yargs; sshd and pam_exec pass none.
const leanArgs = argv.slice(1).every((arg) => !arg.startsWith('-') || arg === '--debug');
if (argv[0] && HOST_COMMANDS.has(argv[0]) && !wantsHelp && leanArgs) {
  const { main } = await import('./host-entry');
  await main(argv);
} else {
  const { main } = await import('./main');
  await main(argv);
}
