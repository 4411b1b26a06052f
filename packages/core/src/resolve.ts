/*
 * From the instance's credentials to its keymaker config: who am I (GetCallerIdentity), which role, what its
 * description says (role-config.ts), and the credentials of the ID-resolver account when the users live there.
 * Fails closed: any doubt is an error, never an empty config.
 */
import { GetRoleCommand, type IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { awsCall, requireString, unexpectedAnswer } from './aws';
import { AwsError, RoleConfigError } from './errors';
import { IamDirectory } from './directory';
import { isAccountId, parseArn } from './names';
import {
  assertValidRoleConfig,
  parseRoleDescription,
  resolveRoleConfig,
  type ResolvedRoleConfig,
  type RoleConfig,
} from './role-config';

export type CallerKind = 'assumed-role' | 'user' | 'root' | 'other';

export interface CallerIdentity {
  arn: string;
  accountId: string;
  kind: CallerKind;
  /** For assumed-role: the role's name; for user: the IAM user's name. */
  name?: string;
}

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Epoch milliseconds. */
  expiration: number;
}

/** Small key/value store for login-to-login caching; the host supplies a root-owned file store. */
export interface CacheStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<void>;
}

export async function getCallerIdentity(sts: STSClient): Promise<CallerIdentity> {
  const out = await awsCall('GetCallerIdentity', () => sts.send(new GetCallerIdentityCommand({})));
  const arn = requireString(out.Arn, 'GetCallerIdentity', 'Arn');
  return parseCallerArn(arn);
}

export function parseCallerArn(arn: string): CallerIdentity {
  const parsed = parseArn(arn);
  if (!parsed || !isAccountId(parsed.accountId)) throw unexpectedAnswer('GetCallerIdentity', 'malformed Arn');
  const { accountId, resource, service } = parsed;
  if (service === 'sts' && resource.startsWith('assumed-role/')) {
    const [, roleName] = resource.split('/');
    if (!roleName) throw unexpectedAnswer('GetCallerIdentity', 'malformed assumed-role Arn');
    return { arn, accountId, kind: 'assumed-role', name: roleName };
  }
  if ((service === 'iam' || service === 'sts') && resource.startsWith('user/')) {
    return { arn, accountId, kind: 'user', name: resource.split('/').pop() };
  }
  if (resource === 'root') return { arn, accountId, kind: 'root' };
  return { arn, accountId, kind: 'other' };
}

/**
 * The role's keymaker config, read from its description. Fails closed: a
 * throttled, denied or failed GetRole is an error, never "no config".
 */
export async function readRoleConfig(iam: IAMClient, roleName: string): Promise<RoleConfig> {
  const out = await awsCall('GetRole', () => iam.send(new GetRoleCommand({ RoleName: roleName })));
  if (!out.Role) throw unexpectedAnswer('GetRole', 'no Role');
  return parseRoleDescription(out.Role.Description);
}

export interface InstanceConfig {
  caller: CallerIdentity;
  /** Where the config came from: the caller's role, or nothing (user credentials have no role). */
  source: 'role' | 'none';
  config: RoleConfig;
}

export async function loadInstanceConfig(
  clients: { iam: IAMClient; sts: STSClient },
  options: { requireRole?: boolean; caller?: CallerIdentity } = {},
): Promise<InstanceConfig> {
  const caller = options.caller ?? (await getCallerIdentity(clients.sts));
  if (caller.kind !== 'assumed-role') {
    if (options.requireRole) throw notARoleError(caller);
    return { caller, source: 'none', config: {} };
  }
  return { caller, source: 'role', config: await readRoleConfig(clients.iam, caller.name!) };
}

/**
 * The host's directory is decided by its role's description: credentials of an IAM user or of the
 * account root (root's own ~/.aws, AWS_* variables) have no role, and taking them as "no config"
 * would drop keymaker_require_iam_group. So for the host they are an error (fail closed).
 */
export function notARoleError(caller: CallerIdentity): AwsError {
  return new AwsError(
    'NO_INSTANCE_ROLE',
    `the AWS credentials in use are ${caller.arn}, not a role's: keymaker's host commands must run with the instance role ` +
      "(or the role credentials named in /etc/keymaker/config.json); they never use root's own AWS credentials",
    { details: { callerArn: caller.arn, callerKind: caller.kind } },
  );
}

/** The same identity for the cache: one partition, account and role (session names differ between runs). */
export function sameRoleIdentity(a: CallerIdentity, b: CallerIdentity): boolean {
  if (a.kind !== 'assumed-role' || b.kind !== 'assumed-role') return a.kind === b.kind && a.arn === b.arn;
  return parseArn(a.arn)?.partition === parseArn(b.arn)?.partition && a.accountId === b.accountId && a.name === b.name;
}

export async function assumeResolverRole(
  sts: STSClient,
  config: RoleConfig,
  partition = 'aws',
  sessionName = 'keymaker',
): Promise<TemporaryCredentials> {
  const roleArn = resolverRoleArn(config, partition);
  const out = await awsCall('AssumeRole', () =>
    sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName })),
  );
  const creds = out.Credentials;
  if (!creds) throw unexpectedAnswer('AssumeRole', 'no Credentials');
  const expiration =
    creds.Expiration instanceof Date ? creds.Expiration.getTime() : Date.parse(String(creds.Expiration));
  if (!Number.isFinite(expiration)) throw unexpectedAnswer('AssumeRole', 'no Expiration');
  return {
    accessKeyId: requireString(creds.AccessKeyId, 'AssumeRole', 'AccessKeyId'),
    secretAccessKey: requireString(creds.SecretAccessKey, 'AssumeRole', 'SecretAccessKey'),
    sessionToken: requireString(creds.SessionToken, 'AssumeRole', 'SessionToken'),
    expiration,
  };
}

export function resolverRoleArn(config: RoleConfig, partition = 'aws'): string {
  if (!config.idResolverAccount || !config.idResolverIamRole) {
    throw new RoleConfigError('no ID-resolver account configured');
  }
  return `arn:${partition}:iam::${config.idResolverAccount}:role/${config.idResolverIamRole}`;
}

export interface ResolveOptions {
  iam: IAMClient;
  sts: STSClient;
  /** Builds an IAM client for the ID-resolver account's credentials. */
  iamClientFor: (credentials: TemporaryCredentials) => IAMClient;
  /** Skip reading the role: use this config (e.g. from the command line or a test). */
  config?: RoleConfig;
  cache?: CacheStore;
  /** How long a cached role config is trusted. Default 5 minutes. */
  configTtlMs?: number;
  /** Resolver credentials are renewed this long before they expire. Default 5 minutes. */
  credentialsMarginMs?: number;
  now?: () => number;
  sessionName?: string;
  /** Read the role config afresh even when the cache holds a fresh copy (a cache writer keeping it warm). */
  refresh?: boolean;
  /**
   * The host: the caller must be a role (an IAM user or account root is NO_INSTANCE_ROLE, never
   * "no config"), and a cached "no config" entry is never used.
   */
  requireRole?: boolean;
  /**
   * The STS client signs with credentials given to it (not the SDK's default chain): a cached caller is then
   * recognised by the access key ID it was answered for, without a GetCallerIdentity per run. Off by default, so
   * resolving never reads a credential chain the caller did not choose.
   */
  recogniseCallerByAccessKey?: boolean;
}

export interface Resolution {
  caller?: CallerIdentity;
  source: 'role' | 'none' | 'given';
  config: ResolvedRoleConfig;
  directory: IamDirectory;
  /** True when the directory is in the ID-resolver account. */
  crossAccount: boolean;
  /** Which parts came from the cache (for logs and benchmarks). */
  cached: { config: boolean; credentials: boolean };
}

export const DEFAULT_CONFIG_TTL_MS = 5 * 60 * 1000;
export const DEFAULT_CREDENTIALS_MARGIN_MS = 5 * 60 * 1000;
const CACHE_KEY = 'instance-config-v1';

interface CacheEntry {
  savedAt: number;
  caller: CallerIdentity;
  /**
   * The access key ID of the credentials GetCallerIdentity answered `caller` for. An access key ID belongs to one
   * principal for its whole life, so a later run holding the same key is that caller without asking STS again (a
   * fresh login process saves a round trip and a TLS connection). Instance-role keys rotate about hourly; a run
   * with another key asks STS, as before.
   */
  callerAccessKeyId?: string;
  source: 'role' | 'none';
  config: RoleConfig;
  credentials?: TemporaryCredentials;
}

function readCacheEntry(value: unknown): CacheEntry | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const entry = value as CacheEntry;
  if (typeof entry.savedAt !== 'number' || !entry.caller || typeof entry.caller.arn !== 'string') return undefined;
  if (entry.source !== 'role' && entry.source !== 'none') return undefined;
  if (entry.callerAccessKeyId !== undefined && !isAccessKeyId(entry.callerAccessKeyId)) return undefined;
  try {
    // A cache file is data too: the config is validated again, never trusted.
    entry.config = assertValidRoleConfig(entry.config ?? {});
    entry.caller = parseCallerArn(entry.caller.arn);
  } catch {
    return undefined;
  }
  const creds = entry.credentials;
  if (
    creds &&
    (typeof creds.accessKeyId !== 'string' ||
      typeof creds.secretAccessKey !== 'string' ||
      typeof creds.sessionToken !== 'string' ||
      typeof creds.expiration !== 'number')
  ) {
    return undefined;
  }
  return entry;
}

/**
 * Finds the IAM directory this host resolves users in: reads the instance
 * role's config (or a fresh cached copy), and assumes the ID-resolver role
 * when one is configured (reusing cached credentials until shortly before
 * they expire). Any failure throws; nothing falls back to "no config".
 */
export async function resolveDirectory(options: ResolveOptions): Promise<Resolution> {
  const now = options.now ?? Date.now;
  const ttl = options.configTtlMs ?? DEFAULT_CONFIG_TTL_MS;
  const margin = options.credentialsMarginMs ?? DEFAULT_CREDENTIALS_MARGIN_MS;
  const cached = { config: false, credentials: false };

  let caller: CallerIdentity | undefined;
  let source: Resolution['source'];
  let config: RoleConfig;
  let entry: CacheEntry | undefined;
  let keyLearnt = false;

  if (options.config) {
    source = 'given';
    config = assertValidRoleConfig(options.config);
  } else {
    entry = options.cache ? readCacheEntry(await safeGet(options.cache, CACHE_KEY)) : undefined;
    // A cached config is used only by the identity that read it: whoever runs now is known by its access key ID
    // (the key the entry's caller was answered for) or else asked (one STS call, outside IAM's throttling), and
    // compared with the role recorded in the entry. So a run with other credentials (root's own, another role's)
    // cannot decide what later runs trust.
    const accessKeyId = options.recogniseCallerByAccessKey ? await currentAccessKeyId(options.sts) : undefined;
    const sameKey = entry?.callerAccessKeyId !== undefined && entry.callerAccessKeyId === accessKeyId;
    const current = entry ? (sameKey ? entry.caller : await getCallerIdentity(options.sts)) : undefined;
    if (current && options.requireRole && current.kind !== 'assumed-role') throw notARoleError(current);
    if (entry && current && !sameRoleIdentity(entry.caller, current)) entry = undefined;
    if (entry && options.requireRole && entry.source !== 'role') entry = undefined;
    if (entry && !options.refresh && now() - entry.savedAt >= 0 && now() - entry.savedAt < ttl) {
      cached.config = true;
      // Confirmed by STS for a new key: recorded, so the next run with that key need not ask.
      if (!sameKey && accessKeyId !== undefined) {
        entry.callerAccessKeyId = accessKeyId;
        keyLearnt = true;
      }
    } else {
      const loaded = await loadInstanceConfig(options, { requireRole: options.requireRole, caller: current });
      const previous = entry;
      entry = { savedAt: now(), caller: loaded.caller, source: loaded.source, config: loaded.config };
      if (accessKeyId !== undefined) entry.callerAccessKeyId = accessKeyId;
      // Resolver credentials outlive the config TTL while they name the same role.
      if (previous?.credentials && resolverKey(previous.config) === resolverKey(loaded.config)) {
        entry.credentials = previous.credentials;
      }
    }
    caller = entry.caller;
    source = entry.source;
    config = entry.config;
  }

  const resolved = resolveRoleConfig(config);
  let iam = options.iam;
  const crossAccount = Boolean(resolved.idResolverAccount);
  if (crossAccount) {
    let credentials = entry?.credentials;
    if (credentials && credentials.expiration - margin > now()) {
      cached.credentials = true;
    } else {
      const partition = caller ? parseArn(caller.arn)?.partition : undefined;
      credentials = await assumeResolverRole(options.sts, resolved, partition ?? 'aws', options.sessionName);
    }
    if (entry) entry.credentials = credentials;
    iam = options.iamClientFor(credentials);
  } else if (entry) {
    delete entry.credentials;
  }

  if (options.cache && entry && (keyLearnt || !(cached.config && (!crossAccount || cached.credentials)))) {
    await safeSet(options.cache, CACHE_KEY, entry);
  }
  return { caller, source, config: resolved, directory: new IamDirectory(iam, resolved), crossAccount, cached };
}

/** AWS access key IDs: a 4-letter type prefix (AKIA, ASIA, ...) and 12 to 124 more upper-case letters and digits. */
function isAccessKeyId(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Z0-9]{16,128}$/.test(value);
}

/**
 * The access key ID the STS client signs with, or undefined when its credentials cannot be read here (then STS is
 * asked, as without a cache). Reading them costs nothing extra: the first request resolves them anyway.
 */
async function currentAccessKeyId(sts: STSClient): Promise<string | undefined> {
  try {
    const provider = sts.config.credentials as unknown;
    const credentials: unknown = typeof provider === 'function' ? await (provider as () => unknown)() : undefined;
    const id = (credentials as { accessKeyId?: unknown } | undefined)?.accessKeyId;
    return isAccessKeyId(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function resolverKey(config: RoleConfig): string {
  return `${config.idResolverAccount ?? ''}/${config.idResolverIamRole ?? ''}`;
}

// The cache only saves round trips: a broken cache must not break logins.
async function safeGet(cache: CacheStore, key: string): Promise<unknown> {
  try {
    return await cache.get(key);
  } catch {
    return undefined;
  }
}
async function safeSet(cache: CacheStore, key: string, value: unknown): Promise<void> {
  try {
    await cache.set(key, value);
  } catch {
    /* see safeGet */
  }
}

/** The IAM user behind the current credentials, for commands run without --user. */
export async function currentIamUserName(sts: STSClient): Promise<string> {
  const caller = await getCallerIdentity(sts);
  if (caller.kind === 'user' && caller.name) return caller.name;
  if (caller.kind === 'assumed-role') {
    throw new AwsError(
      'ROLE_CREDENTIALS',
      `you are signed in with role credentials (${caller.name}), which have no IAM user; pass --user NAME`,
    );
  }
  throw new AwsError(
    'ROLE_CREDENTIALS',
    `the current credentials (${caller.arn}) are not an IAM user's; pass --user NAME`,
  );
}
