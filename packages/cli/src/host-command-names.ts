/*
 * The commands sshd, PAM and the sync schedule run, by every spelling: the one table behind the
 * lean host entry (host-entry.ts) and the `keymaker` launcher's choice of it (keymaker.ts).
 * Imported by the launcher before anything else loads: keep it free of imports.
 */
export const HOST_COMMAND_ALIASES = {
  get_authorized_keys: 'get-authorized-keys',
  pam_create_account: 'pam-create-account',
  pam_efs_home: 'pam-efs-home',
  store_key_bodies: 'store-key-bodies',
  sync_groups: 'sync-groups',
  agent: 'agent',
} as const;

export type HostCommandName = keyof typeof HOST_COMMAND_ALIASES;

/** The command a spelling names, if it is a host command. */
export function hostCommandName(spelling: string | undefined): HostCommandName | undefined {
  for (const [name, alias] of Object.entries(HOST_COMMAND_ALIASES) as Array<[HostCommandName, string]>)
    if (spelling === name || spelling === alias) return name;
  return undefined;
}

/**
 * What the launcher hands to the lean entry without loading yargs: what sshd and pam_exec run.
 * sync_groups from the launcher goes through yargs (its help, the global flags); the schedule
 * runs the installed bundle directly.
 */
export const LEAN_FROM_LAUNCHER: ReadonlySet<HostCommandName> = new Set([
  'get_authorized_keys',
  'pam_create_account',
  'pam_efs_home',
  // The PAM session hook's detached worker (host-commands.ts startKeyBodiesWorker).
  'store_key_bodies',
]);
