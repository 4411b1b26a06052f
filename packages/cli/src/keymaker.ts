#!/usr/bin/env node
export {};
// Entry point. get_authorized_keys runs at every SSH login, so it takes the
// lean path: no yargs, no command modules, only the lookup bundle.
const argv = process.argv.slice(2);
if (argv[0] === 'get_authorized_keys' || argv[0] === 'get-authorized-keys') {
  const { main } = await import('./lookup-entry');
  await main(argv.slice(1));
} else {
  const { main } = await import('./main');
  await main(argv);
}
