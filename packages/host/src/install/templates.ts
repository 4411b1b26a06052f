import * as path from 'node:path';
import type { HostPaths } from '../system/paths';

/**
 * The small root-owned files install writes: the three commands sshd, PAM and
 * the sync schedule run, and the schedule itself. Everything is an absolute
 * path: sshd, PAM and cron run these with a minimal PATH.
 */

export const SYNC_SERVICE = 'keymaker-sync-groups.service';
export const SYNC_TIMER = 'keymaker-sync-groups.timer';

/**
 * `entry`: the file node runs, the host bundle or the loader that loads it with its code cache
 * (paths.ts hostLoaderFiles); both take the command and its arguments.
 */
function wrapper(entry: string, nodePath: string, purpose: string, command: string, pre: string[] = []): string {
  return [
    '#!/bin/sh',
    `# Keymaker: ${purpose}.`,
    '# Written by "keymaker install"; "keymaker uninstall" removes it. Do not edit.',
    'unset NODE_OPTIONS NODE_PATH',
    ...pre,
    `exec ${nodePath} ${entry} ${command} "$@"`,
    '',
  ].join('\n');
}

export function authorizedKeysWrapper(paths: HostPaths, nodePath: string, entry = paths.hostBundle): string {
  return wrapper(entry, nodePath, 'AuthorizedKeysCommand, run by sshd as "%u %f"', 'get_authorized_keys');
}

/**
 * In the session stage (compat mode's key-body line, pam.ts) the wrapper starts the detached worker itself and
 * exits 0: the session waits for a fork of sh, not for Node to start (host-commands.ts startKeyBodiesWorker).
 * The worker checks the name; the shell only quotes it.
 */
export function pamCreateAccountWrapper(paths: HostPaths, nodePath: string, entry = paths.hostBundle): string {
  return wrapper(entry, nodePath, 'pam_exec hook that creates the account of an IAM user', 'pam_create_account', [
    'if [ "${PAM_TYPE:-}" = open_session ]; then',
    `  ${nodePath} ${entry} store_key_bodies "\${PAM_USER:-}" </dev/null >/dev/null 2>&1 &`,
    '  exit 0',
    'fi',
  ]);
}

export function efsHomeWrapper(paths: HostPaths, nodePath: string, entry = paths.hostBundle): string {
  return wrapper(
    entry,
    nodePath,
    'pam_exec session hook that checks and creates a home on the EFS share',
    'pam_efs_home',
  );
}

/**
 * `--jitter SECONDS` (cron only) sleeps a random time first: IAM's rate limit
 * is per account, and a fleet whose clocks agree would otherwise call at once.
 */
export function syncGroupsWrapper(paths: HostPaths, nodePath: string, entry = paths.hostBundle): string {
  return wrapper(entry, nodePath, 'group sync, run by cron or the systemd timer', 'sync_groups', [
    'if [ "$1" = --jitter ] && [ -n "$2" ]; then',
    '  max=$2; shift 2',
    '  case $max in *[!0-9]*|"") echo "keymaker-sync-groups: --jitter needs seconds" >&2; exit 2;; esac',
    '  if [ "$max" -gt 0 ]; then',
    '    r=$(/usr/bin/od -An -N2 -tu2 /dev/urandom | /usr/bin/tr -d " ")',
    '    /bin/sleep $(( r % max ))',
    '  fi',
    'fi',
  ]);
}

/** Random delay before a scheduled sync: up to half the period, at most a minute. */
export function syncJitterSeconds(intervalMinutes: number): number {
  return Math.min(60, intervalMinutes * 30);
}

export function cronFile(paths: HostPaths, intervalMinutes: number): string {
  return [
    '# Keymaker: sync Linux groups with IAM groups.',
    '# Written by "keymaker install"; "keymaker uninstall" removes it. Do not edit.',
    `*/${intervalMinutes} * * * * root ${paths.syncGroupsCommand} --jitter ${syncJitterSeconds(intervalMinutes)}`,
    '',
  ].join('\n');
}

/** cron.d line -> user crontab line (no user field), for `crontab -n -`. */
export function cronLinesForSyntaxCheck(content: string): string {
  return content
    .split('\n')
    .map((line) => {
      if (line.trim() === '' || line.trim().startsWith('#')) return line;
      const fields = line.trim().split(/\s+/);
      return [...fields.slice(0, 5), ...fields.slice(6)].join(' ');
    })
    .join('\n');
}

export function systemdService(paths: HostPaths): string {
  return [
    '# Written by "keymaker install"; "keymaker uninstall" removes it.',
    '[Unit]',
    'Description=Keymaker: sync Linux groups with IAM groups',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${paths.syncGroupsCommand}`,
    // A backstop above sync_groups' own deadline (2 min): systemd kills a run that still hangs.
    'TimeoutStartSec=300',
    '',
  ].join('\n');
}

export function systemdTimer(intervalMinutes: number): string {
  return [
    '# Written by "keymaker install"; "keymaker uninstall" removes it.',
    '[Unit]',
    'Description=Keymaker: periodic IAM group sync',
    '',
    '[Timer]',
    `OnCalendar=*:0/${intervalMinutes}`,
    // Spread a fleet's calls: IAM's rate limit is per account.
    `RandomizedDelaySec=${syncJitterSeconds(intervalMinutes)}`,
    'OnBootSec=1min',
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
}

export function systemdUnitPaths(paths: HostPaths): { service: string; timer: string } {
  return { service: path.join(paths.systemdDir, SYNC_SERVICE), timer: path.join(paths.systemdDir, SYNC_TIMER) };
}
