import { createContext, explicitAwsFlags, type CommandContext, type GlobalOptions } from '../context';
import { runCommand } from '../run';

/** --config of the host commands run through the CLI. */
export const hostConfigOption = {
  type: 'string',
  describe: 'host config file (default /etc/keymaker/config.json; when there is none, this is a client command)',
} as const;

/**
 * get_uid / get_groups on an instance answer what the installed hooks
 * answer: with a host config file, its endpoints, credentials, profile and
 * region (under any explicit --region/--profile); without one, a client command.
 */
export async function hostOrClientContext(args: GlobalOptions & { config?: string }): Promise<CommandContext> {
  const { loadHostCliRuntime } = await import('@keymaker/host');
  const runtime = await loadHostCliRuntime({ configFile: args.config });
  return runtime ? createContext(args, runtime.aws, runtime.resolve) : createContext(args);
}

/** get_authorized_keys through the CLI: the hook's code, with the explicit flags laid over the host config. */
export async function authorizedKeysThroughCli(
  args: GlobalOptions & { user: string; fingerprint?: string; config?: string },
): Promise<void> {
  const { runHostCommand, exitWhenWritten } = await import('../host-entry');
  const argv = [
    'get_authorized_keys',
    args.user,
    ...(args.fingerprint ? [args.fingerprint] : []),
    ...(args.debug ? ['--debug'] : []),
  ];
  await runCommand(args.debug, () =>
    runHostCommand(argv, {
      aws: explicitAwsFlags(args),
      ...(args.config ? { paths: { configFile: args.config } } : {}),
    }),
  );
  await exitWhenWritten();
}

/** `get_uid USER`: the UID keymaker gives the Linux user (from the IAM user's unique ID). */
export async function getUid(ctx: CommandContext, args: { user: string }): Promise<void> {
  const { directory, config } = await ctx.resolve();
  const iamName = directory.iamUserNameFor(args.user);
  const user = await directory.getUser(iamName);
  const uid = directory.uidFor(user);
  if (ctx.options.json)
    ctx.out(
      JSON.stringify({
        user: args.user,
        iamUser: user.userName,
        iamUserId: user.userId,
        uid,
        scheme: config.uidScheme,
      }),
    );
  else ctx.out(String(uid));
}

/** `get_groups USER`: the user's Linux groups (IAM groups with the prefix, prefix stripped). */
export async function getGroups(ctx: CommandContext, args: { user: string }): Promise<void> {
  const { directory } = await ctx.resolve();
  const groups = await directory.linuxGroupsForUser(directory.iamUserNameFor(args.user));
  if (ctx.options.json)
    ctx.out(JSON.stringify(groups.map((g) => ({ name: g.linuxName, gid: g.gid, iamGroup: g.groupName }))));
  else for (const group of groups) ctx.out(group.linuxName);
}
