/*
 * /etc/keymaker/config.json: what the login-time processes need and sshd will
 * not pass in the environment (sshd resets it). Written by `keymaker install`,
 * root-owned, mode 0644. Parsed strictly: an unknown or ill-typed field is an
 * error, so a typo never silently changes behaviour.
 */
import { efsHomeProblem, InputError, isValidLinuxName } from '@keymaker/core';

export interface HostConfig {
  version: 1;
  /** AWS region used to sign IAM/STS calls. */
  region?: string;
  /** Endpoint overrides (private endpoints, tests). */
  iamEndpoint?: string;
  stsEndpoint?: string;
  /** Instance metadata endpoint override (tests, IMDS proxies). */
  metadataEndpoint?: string;
  /** Named profile and files, for hosts without an instance role (on-premises, tests). */
  profile?: string;
  sharedCredentialsFile?: string;
  sharedConfigFile?: string;
  /** Hard deadline for one lookup, ms. */
  deadlineMs: number;
  /** The user sshd runs the lookup as. */
  authorizedKeysCommandUser: string;
  /** Group sync period, minutes (1-59). */
  syncIntervalMinutes: number;
  /** Sync also creates the accounts of authorized IAM users ahead of their first login. */
  preProvisionAccounts: boolean;
  /** Existing Linux groups (not created by keymaker) that sync may manage anyway. */
  allowedExistingGroups: string[];
  /**
   * Linux user names never given to an IAM user, on top of core's list of
   * system and package service accounts (RESERVED_LINUX_NAMES): no keys from
   * the lookup, no account from the PAM hook, no group membership from sync.
   */
  reservedNames: string[];
  /**
   * Lifetime of the cached role config, seconds. Sync (every syncIntervalMinutes)
   * refreshes the cache, so keep this above the sync interval; a role
   * description change reaches logins within this time.
   */
  cacheTtlSeconds: number;
  /** Syslog socket instead of /dev/log (hosts without a syslog daemon on /dev/log, tests). */
  syslogSocket?: string;
  /**
   * Agent mode: how often the agent re-checks the IAM users this host has seen, seconds (1-3600, default 300).
   * It is the revocation delay: a user removed from IAM or from the required group stops resolving, gets no
   * keys and has her processes ended within this time.
   */
  agentRefreshSeconds?: number;
  /** FS_ID[:/PATH]: managed users' homes live on this EFS file system (install --efs-home, issue 15). */
  efsHome?: string;
  /**
   * Where that share is mounted, the base of managed homes (BASE/NAME). With efsHome set, a managed login is
   * refused while nothing is mounted there (fail closed). Default /home/keymaker.
   */
  efsHomeBase?: string;
  /** Login shell of IAM users: the agent's records and the accounts compat mode makes. Default /bin/bash. */
  loginShell?: string;
}

export const DEFAULT_HOST_CONFIG: HostConfig = {
  version: 1,
  deadlineMs: 5000,
  authorizedKeysCommandUser: 'keymaker',
  syncIntervalMinutes: 5,
  preProvisionAccounts: false,
  allowedExistingGroups: [],
  reservedNames: [],
  cacheTtlSeconds: 600,
};

type FieldType = 'string' | 'number' | 'boolean' | 'string[]';
const FIELDS: Record<keyof HostConfig, FieldType> = {
  version: 'number',
  region: 'string',
  iamEndpoint: 'string',
  stsEndpoint: 'string',
  metadataEndpoint: 'string',
  profile: 'string',
  sharedCredentialsFile: 'string',
  sharedConfigFile: 'string',
  deadlineMs: 'number',
  authorizedKeysCommandUser: 'string',
  syncIntervalMinutes: 'number',
  preProvisionAccounts: 'boolean',
  allowedExistingGroups: 'string[]',
  reservedNames: 'string[]',
  cacheTtlSeconds: 'number',
  syslogSocket: 'string',
  agentRefreshSeconds: 'number',
  loginShell: 'string',
  efsHome: 'string',
  efsHomeBase: 'string',
};

function typeOk(value: unknown, type: FieldType): boolean {
  if (type === 'string[]') return Array.isArray(value) && value.every((item) => typeof item === 'string');
  return typeof value === type;
}

export function parseHostConfig(text: string, source = 'host config'): HostConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InputError('INVALID_ARGUMENT', `${source} is not valid JSON; fix it or run "keymaker install" again`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError('INVALID_ARGUMENT', `${source} must be a JSON object; run "keymaker install" again`);
  }
  const problems: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    const type = FIELDS[key as keyof HostConfig];
    if (!type) problems.push(`unknown field ${JSON.stringify(key)}`);
    else if (!typeOk(value, type)) problems.push(`${key} must be a ${type}`);
  }
  const config = { ...DEFAULT_HOST_CONFIG, ...(raw as Partial<HostConfig>) };
  if (config.version !== 1) problems.push('version must be 1');
  if (!(config.deadlineMs >= 100 && config.deadlineMs <= 60_000)) problems.push('deadlineMs must be 100-60000');
  if (!(
    Number.isInteger(config.syncIntervalMinutes) &&
    config.syncIntervalMinutes >= 1 &&
    config.syncIntervalMinutes <= 59
  )) {
    problems.push('syncIntervalMinutes must be a whole number 1-59');
  }
  if (!(config.cacheTtlSeconds >= 0 && config.cacheTtlSeconds <= 3600)) problems.push('cacheTtlSeconds must be 0-3600');
  for (const key of ['iamEndpoint', 'stsEndpoint', 'metadataEndpoint'] as const) {
    const value = config[key];
    if (value !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(value))
      problems.push(`${key} must be an http(s) URL`);
  }
  if (
    config.agentRefreshSeconds !== undefined &&
    !(
      Number.isInteger(config.agentRefreshSeconds) &&
      config.agentRefreshSeconds >= 1 &&
      config.agentRefreshSeconds <= 3600
    )
  )
    problems.push('agentRefreshSeconds must be a whole number 1-3600');
  // It goes into useradd's argv and into passwd records: a plain absolute path, nothing else.
  if (config.loginShell !== undefined && !/^\/[A-Za-z0-9._+/-]{1,254}$/.test(config.loginShell))
    problems.push('loginShell must be an absolute path (letters, digits, . _ + - /)');
  if (config.syslogSocket !== undefined && !config.syslogSocket.startsWith('/'))
    problems.push('syslogSocket must be an absolute path');
  if (typeof config.efsHome === 'string') {
    const problem = efsHomeProblem(config.efsHome);
    if (problem) problems.push(`efsHome: ${problem}`);
  }
  if (typeof config.efsHomeBase === 'string' && !isNormalizedAbsolute(config.efsHomeBase))
    problems.push('efsHomeBase must be a normalized absolute path below / (e.g. /home/keymaker)');
  if (config.efsHomeBase !== undefined && config.efsHome === undefined) problems.push('efsHomeBase needs efsHome');
  // Host commands never read root's own ~/.aws (issue 13, point 1): a profile needs a file of its own.
  if (
    config.profile !== undefined &&
    config.sharedCredentialsFile === undefined &&
    config.sharedConfigFile === undefined
  ) {
    problems.push(
      'profile needs sharedCredentialsFile or sharedConfigFile (keymaker install --credentials-file FILE --profile NAME)',
    );
  }
  if (Array.isArray(config.reservedNames)) {
    const bad = config.reservedNames.filter((name) => typeof name !== 'string' || !isValidLinuxName(name));
    if (bad.length > 0)
      problems.push(
        `reservedNames must hold Linux user names (lower case): ${bad.map((name) => JSON.stringify(name)).join(', ')}`,
      );
  }
  if (problems.length > 0) {
    throw new InputError('INVALID_ARGUMENT', `${source}: ${problems.join('; ')}`);
  }
  return config;
}

function isNormalizedAbsolute(p: string): boolean {
  return /^(\/[A-Za-z0-9._+@=-]+)+$/.test(p) && !p.split('/').some((s) => s === '.' || s === '..');
}

/** The base of managed homes when they live on EFS, else undefined. */
export function efsHomeBaseOf(config: HostConfig): string | undefined {
  return config.efsHome === undefined ? undefined : (config.efsHomeBase ?? DEFAULT_EFS_HOME_BASE);
}

/** Where the EFS share is mounted unless the host config says otherwise. */
export const DEFAULT_EFS_HOME_BASE = '/home/keymaker';

/** Every name the host reserves besides core's list: the config's reservedNames and the AuthorizedKeysCommandUser. */
export function hostReservedNames(config: HostConfig): string[] {
  return [...new Set([...config.reservedNames, config.authorizedKeysCommandUser])];
}

export function serializeHostConfig(config: HostConfig): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}
