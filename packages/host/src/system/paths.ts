import * as path from 'node:path';

/*
 * Where keymaker lives on a host. sshd and PAM execute these as root or as the
 * lookup user, so every file and every parent directory must be root-owned and
 * not group- or world-writable (sshd's safe-path rule).
 */
export interface HostPaths {
  /** Host configuration written by `keymaker install` (region, endpoints, deadline...). */
  configFile: string;
  /** The self-contained host bundle (lookup, PAM hook, group sync) copied at install. */
  libDir: string;
  hostBundle: string;
  /** AuthorizedKeysCommand wrapper: runs `node hostBundle get_authorized_keys %u %f`. */
  authorizedKeysCommand: string;
  /** pam_exec target: creates the account of a confirmed IAM user. */
  pamCreateAccountCommand: string;
  /** Run by cron / the systemd timer: `node hostBundle sync_groups`. */
  syncGroupsCommand: string;
  sshdConfig: string;
  sshdConfigDir: string;
  sshdDropIn: string;
  pamSshd: string;
  cronFile: string;
  systemdDir: string;
  /** Install state: what install wrote and the original bytes of what it changed. */
  stateDir: string;
  /** Login-to-login cache (role config, resolver credentials); not readable by others. */
  cacheDir: string;
  /** Lock that keeps two group syncs from overlapping. */
  syncLock: string;
  /**
   * The accounts keymaker manages (managed-accounts.ts), root:root 0644: written by the PAM hook,
   * the sync and `install --adopt-legacy-accounts`; read by the lookup. Uninstall leaves it.
   */
  managedAccounts: string;
  /** sudo's main policy: install checks that it reads sudoersDropIn's directory (@includedir). */
  sudoers: string;
  /** keymaker's sudoers drop-in: sudo for the members of keymaker_sudo_iam_group (install/sudoers.ts). */
  sudoersDropIn: string;
  /** sudo's front-end config: install adds `Set group_source dynamic` (revocation in open sessions). */
  sudoConf: string;
  /** pam_exec target in the session stage when homes live on EFS: refuses while the share is away, makes the home. */
  efsHomeCommand: string;
  /** The file systems table (the EFS mount where systemd is not PID 1). */
  fstab: string;
  /** The Linux groups keymaker mirrors from IAM groups (managed-accounts.ts), root:root 0644: written by the sync. */
  managedGroups: string;
}

/**
 * What the wrappers run when install has them (code-cache.ts): a small loader, the CommonJS build of
 * the host entry it loads, and that build's V8 code cache, next to hostBundle (the loader finds the
 * bundle by its own directory).
 */
export function hostLoaderFiles(paths: Pick<HostPaths, 'libDir'>): { loader: string; bundle: string; cache: string } {
  const bundle = path.join(paths.libDir, 'keymaker-host.cjs');
  return { loader: path.join(paths.libDir, 'keymaker-host-loader.cjs'), bundle, cache: `${bundle}.cache` };
}

export const DEFAULT_PATHS: HostPaths = {
  configFile: '/etc/keymaker/config.json',
  libDir: '/usr/local/lib/keymaker',
  hostBundle: '/usr/local/lib/keymaker/keymaker-host.mjs',
  authorizedKeysCommand: '/usr/local/sbin/keymaker-authorized-keys',
  pamCreateAccountCommand: '/usr/local/sbin/keymaker-create-account',
  syncGroupsCommand: '/usr/local/sbin/keymaker-sync-groups',
  sshdConfig: '/etc/ssh/sshd_config',
  sshdConfigDir: '/etc/ssh/sshd_config.d',
  sshdDropIn: '/etc/ssh/sshd_config.d/50-keymaker.conf',
  pamSshd: '/etc/pam.d/sshd',
  cronFile: '/etc/cron.d/keymaker-sync-groups',
  systemdDir: '/etc/systemd/system',
  stateDir: '/var/lib/keymaker',
  cacheDir: '/var/cache/keymaker',
  syncLock: '/run/keymaker-sync-groups.lock',
  managedAccounts: '/etc/keymaker/managed-accounts',
  sudoers: '/etc/sudoers',
  sudoersDropIn: '/etc/sudoers.d/keymaker',
  sudoConf: '/etc/sudo.conf',
  efsHomeCommand: '/usr/local/sbin/keymaker-efs-home',
  fstab: '/etc/fstab',
  managedGroups: '/etc/keymaker/managed-groups',
};
