import type { CommandContext } from '../context';

/** `get_uid USER`: the UID keymaker gives the Linux user (from the IAM user's unique ID). */
export async function getUid(ctx: CommandContext, args: { user: string }): Promise<void> {
  const { directory, config } = await ctx.resolve();
  const iamName = directory.iamUserNameFor(args.user);
  const user = await directory.getUser(iamName);
  const uid = directory.uidFor(user);
  if (ctx.options.json) ctx.out(JSON.stringify({ user: args.user, iamUser: user.userName, iamUserId: user.userId, uid, scheme: config.uidScheme }));
  else ctx.out(String(uid));
}

/** `get_groups USER`: the user's Linux groups (IAM groups with the prefix, prefix stripped). */
export async function getGroups(ctx: CommandContext, args: { user: string }): Promise<void> {
  const { directory } = await ctx.resolve();
  const groups = await directory.linuxGroupsForUser(directory.iamUserNameFor(args.user));
  if (ctx.options.json) ctx.out(JSON.stringify(groups.map((g) => ({ name: g.linuxName, gid: g.gid, iamGroup: g.groupName }))));
  else for (const group of groups) ctx.out(group.linuxName);
}
