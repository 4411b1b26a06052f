import { createContext, type CommandContext, type Commands, type GlobalOptions } from '../context';
import { runCommand } from '../run';
import { deleteKey, listKeys, setKeyStatus, uploadKey } from './keys';
import { authorizedKeysThroughCli, getGroups, getUid, hostConfigOption, hostOrClientContext } from './identity';

/** A key command's body with its context (clients built from the global flags), through the boundary. */
function withContext(args: GlobalOptions, body: (ctx: CommandContext) => Promise<number | void>): Promise<void> {
  return runCommand(args.debug, () => body(createContext(args)));
}

const userOption = {
  type: 'string',
  describe: 'IAM user name (default: the IAM user of the current credentials)',
} as const;
const keyIdPositional = {
  type: 'string',
  demandOption: true,
  describe: 'SSH key ID (APKA..., as list_keys shows it)',
} as const;
const linuxUserPositional = { type: 'string', demandOption: true, describe: 'Linux user name' } as const;

/** Every command keeps keymaker 1.x's underscore name; the kebab-case spelling is an alias. */
export function registerKeyCommands(commands: Commands): Commands {
  return commands
    .command(
      ['upload_key', 'upload-key'],
      'Upload a public SSH key to an IAM user (from ssh-agent, or --identity FILE)',
      (y) =>
        y
          .option('identity', { alias: 'i', type: 'string', describe: 'public or private key file' })
          .option('user', userOption),
      (args) => withContext(args, (ctx) => uploadKey(ctx, args)),
    )
    .command(
      ['list_keys', 'list-keys'],
      "List an IAM user's SSH public keys",
      (y) => y.option('user', userOption),
      (args) => withContext(args, (ctx) => listKeys(ctx, args)),
    )
    .command(
      ['enable_key <id>', 'enable-key'],
      'Enable an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      (args) => withContext(args, (ctx) => setKeyStatus(ctx, args, 'Active')),
    )
    .command(
      ['disable_key <id>', 'disable-key'],
      'Disable an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      (args) => withContext(args, (ctx) => setKeyStatus(ctx, args, 'Inactive')),
    )
    .command(
      ['delete_key <id>', 'delete-key'],
      'Delete an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      (args) => withContext(args, (ctx) => deleteKey(ctx, args)),
    )
    .command(
      ['get_authorized_keys <user> [fingerprint]', 'get-authorized-keys'],
      "Print a Linux user's authorized keys from IAM (what sshd runs at login)",
      (y) =>
        y
          .positional('user', linuxUserPositional)
          .positional('fingerprint', {
            type: 'string',
            describe: "the offered key's fingerprint (sshd's %f), logged only",
          })
          .option('config', hostConfigOption),
      // sshd's call (no flags) is intercepted by the lean entry before yargs loads; flags and --help come here.
      (args) => authorizedKeysThroughCli(args),
    )
    .command(
      ['get_uid <user>', 'get-uid'],
      'Print the UID keymaker assigns to a Linux user',
      (y) => y.positional('user', linuxUserPositional).option('config', hostConfigOption),
      (args) => runCommand(args.debug, async () => getUid(await hostOrClientContext(args), args)),
    )
    .command(
      ['get_groups <user>', 'get-groups'],
      "Print a Linux user's keymaker groups",
      (y) => y.positional('user', linuxUserPositional).option('config', hostConfigOption),
      (args) => runCommand(args.debug, async () => getGroups(await hostOrClientContext(args), args)),
    );
}
