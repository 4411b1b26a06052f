import {
  createIamClient,
  createStsClient,
  resolveDirectory,
  type AwsClientOptions,
  type CacheStore,
  type Resolution,
} from '@keymaker/core';
import { DEFAULT_HOST_CONFIG, parseHostConfig, type HostConfig } from './host-config';
import type { RuntimeSystem } from './host-system';

/**
 * How the runtime (lookup, PAM hook, sync) turns /etc/keymaker/config.json
 * into AWS clients. sshd and pam_exec give us an empty or foreign
 * environment, so the config file is the source of truth; a missing file
 * means defaults plus whatever the SDK finds (instance role).
 */
export async function loadHostConfig(sys: RuntimeSystem, path: string): Promise<HostConfig> {
  const text = await sys.readFile(path);
  if (text === undefined) return { ...DEFAULT_HOST_CONFIG };
  // A config we cannot read is an error (fail closed), never "use defaults".
  return parseHostConfig(text, path);
}

/**
 * Environment the SDK's credential chain reads: credentials/config files,
 * profile, metadata endpoint. Set before any client resolves credentials.
 */
export function awsEnvironmentFor(config: HostConfig): Record<string, string> {
  const env: Record<string, string> = {};
  if (config.sharedCredentialsFile) env.AWS_SHARED_CREDENTIALS_FILE = config.sharedCredentialsFile;
  if (config.sharedConfigFile) env.AWS_CONFIG_FILE = config.sharedConfigFile;
  if (config.profile) env.AWS_PROFILE = config.profile;
  if (config.metadataEndpoint) env.AWS_EC2_METADATA_SERVICE_ENDPOINT = config.metadataEndpoint;
  // The SDK's IMDS defaults (1 s timeout, no retry) already fit a login deadline; made explicit here.
  env.AWS_METADATA_SERVICE_TIMEOUT = '1';
  env.AWS_METADATA_SERVICE_NUM_ATTEMPTS = '1';
  return env;
}

export function applyAwsEnvironment(config: HostConfig, env: NodeJS.ProcessEnv = process.env): void {
  Object.assign(env, awsEnvironmentFor(config));
}

/**
 * Client options. With a deadline (login path), per-request timeouts stay
 * well inside it so a hung socket fails the call, not just the race.
 */
export function awsOptionsFor(config: HostConfig, deadlineMs?: number): AwsClientOptions {
  const options: AwsClientOptions = {
    // Unset: core's client factory applies the one rule (AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1).
    region: config.region,
    iamEndpoint: config.iamEndpoint,
    stsEndpoint: config.stsEndpoint,
    profile: config.profile,
  };
  if (deadlineMs !== undefined) {
    options.connectionTimeoutMs = Math.max(200, Math.min(1000, Math.floor(deadlineMs / 4)));
    options.requestTimeoutMs = Math.max(300, Math.floor(deadlineMs / 2));
    options.maxAttempts = 2;
  } else {
    // Batch jobs (sync) ride out throttling with the SDK's backoff.
    options.maxAttempts = 6;
  }
  return options;
}

export interface ResolveCacheOptions {
  store: CacheStore;
  /** How long a cached role config is trusted (the host config's cacheTtlSeconds). */
  ttlMs: number;
  /** Writers (sync) re-read the role and renew credentials early, keeping the cache warm for lookups. */
  refresh?: boolean;
}

/** Sync renews resolver credentials this long before they expire, so lookups never need to. */
const WRITER_CREDENTIALS_MARGIN_MS = 20 * 60 * 1000;

/** The IAM directory this host resolves users in (role config, ID-resolver account). */
export function resolveWithConfig(aws: AwsClientOptions, cache?: ResolveCacheOptions): Promise<Resolution> {
  return resolveDirectory({
    iam: createIamClient(aws),
    sts: createStsClient(aws),
    cache: cache?.store,
    configTtlMs: cache?.ttlMs,
    refresh: cache?.refresh,
    credentialsMarginMs: cache?.refresh ? WRITER_CREDENTIALS_MARGIN_MS : undefined,
    iamClientFor: (credentials) => createIamClient({ ...aws, credentials }),
  });
}
