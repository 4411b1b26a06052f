import type { Argv } from 'yargs';
import { createContext, type GlobalOptions } from '../context';
import { runCommand } from '../run';
import { deleteKey, listKeys, setKeyStatus, uploadKey } from './keys';
import { authorizedKeysThroughCli, getGroups, getUid, hostConfigOption, hostOrClientContext } from './identity';

// yargs infers argument types per builder; handlers declare what they read.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs' inferred positional types do not match the handlers' yet (issue 10, point 7)
type Handler = (args: any) => Promise<void>;

/** Wraps a command body: builds the context, maps failures to exit codes. */
export function handler<A>(
  body: (ctx: ReturnType<typeof createContext>, args: A & GlobalOptions) => Promise<number | void>,
): Handler {
  return (args: A & GlobalOptions) => runCommand(args.debug, () => body(createContext(args), args));
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
export function registerKeyCommands(cli: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return cli
    .command(
      ['upload_key', 'upload-key'],
      'Upload a public SSH key to an IAM user (from ssh-agent, or --identity FILE)',
      (y) =>
        y
          .option('identity', { alias: 'i', type: 'string', describe: 'public or private key file' })
          .option('user', userOption),
      handler<{ identity?: string; user?: string }>((ctx, args) => uploadKey(ctx, args)),
    )
    .command(
      ['list_keys', 'list-keys'],
      "List an IAM user's SSH public keys",
      (y) => y.option('user', userOption),
      handler<{ user?: string }>((ctx, args) => listKeys(ctx, args)),
    )
    .command(
      ['enable_key <id>', 'enable-key'],
      'Enable an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      handler<{ id: string; user?: string }>((ctx, args) => setKeyStatus(ctx, args, 'Active')),
    )
    .command(
      ['disable_key <id>', 'disable-key'],
      'Disable an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      handler<{ id: string; user?: string }>((ctx, args) => setKeyStatus(ctx, args, 'Inactive')),
    )
    .command(
      ['delete_key <id>', 'delete-key'],
      'Delete an SSH public key',
      (y) => y.positional('id', keyIdPositional).option('user', userOption),
      handler<{ id: string; user?: string }>((ctx, args) => deleteKey(ctx, args)),
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
      (args) => authorizedKeysThroughCli(args as never),
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
