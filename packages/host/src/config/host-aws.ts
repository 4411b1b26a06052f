/*
 * How the runtime (lookup, PAM hook, sync) turns /etc/keymaker/config.json
 * into AWS clients. sshd and pam_exec give us an empty or foreign
 * environment, so the config file is the source of truth; a missing file
 * means defaults plus whatever the SDK finds (instance role).
 */
import {
  createIamClient,
  createStsClient,
  AwsError,
  resolveDirectory,
  type AwsClientOptions,
  type CredentialProvider,
  type CacheStore,
  type Resolution,
} from '@keymaker/core';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { DEFAULT_HOST_CONFIG, parseHostConfig, type HostConfig } from './host-config';
import type { RuntimeSystem } from '../system/runtime-system';
import { clientEndpoint, PreconnectAgent } from './preconnect';

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
/** Stands for "no file": the SDK's loaders read it as empty, so they never fall back to ~/.aws. */
export const NO_AWS_FILE = '/dev/null';

export function awsEnvironmentFor(config: HostConfig): Record<string, string> {
  const env: Record<string, string> = {};
  env.AWS_SHARED_CREDENTIALS_FILE = config.sharedCredentialsFile ?? NO_AWS_FILE;
  env.AWS_CONFIG_FILE = config.sharedConfigFile ?? NO_AWS_FILE;
  if (config.profile) env.AWS_PROFILE = config.profile;
  if (config.metadataEndpoint) env.AWS_EC2_METADATA_SERVICE_ENDPOINT = config.metadataEndpoint;
  // The SDK's IMDS defaults (1 s timeout, no retry) already fit a login deadline; made explicit here.
  env.AWS_METADATA_SERVICE_TIMEOUT = '1';
  env.AWS_METADATA_SERVICE_NUM_ATTEMPTS = '1';
  return env;
}

/**
 * Root's own AWS credentials must not decide who logs in (issue 13): every AWS_* variable the
 * caller brought (keys, AWS_PROFILE, AWS_CONFIG_FILE, web identity, container credentials,
 * endpoints...) is dropped, then only the host config's settings are set, with the shared files
 * pinned to the host config's (or to none), so nothing in the SDK reads the caller's ~/.aws.
 */
export function applyAwsEnvironment(config: HostConfig, env: NodeJS.ProcessEnv = process.env): void {
  for (const key of Object.keys(env)) if (key.startsWith('AWS_')) delete env[key];
  Object.assign(env, awsEnvironmentFor(config));
}

/**
 * The one credential source the host config names, built explicitly (the SDK's default chain
 * would try the caller's environment and home first): the host config's credentials/config file
 * and profile when it names one, else the instance role through IMDS. A profile without a file
 * would mean root's own ~/.aws, so it is refused.
 */
export function hostCredentialProvider(config: HostConfig): CredentialProvider {
  if (config.sharedCredentialsFile || config.sharedConfigFile) {
    return fromIni({
      profile: config.profile ?? 'default',
      filepath: config.sharedCredentialsFile ?? NO_AWS_FILE,
      configFilepath: config.sharedConfigFile ?? NO_AWS_FILE,
    });
  }
  if (config.profile) {
    return () =>
      Promise.reject(
        new AwsError(
          'NO_CREDENTIALS',
          `the host config names profile ${JSON.stringify(config.profile)} but no sharedCredentialsFile or sharedConfigFile; ` +
            "keymaker's host commands never read root's own ~/.aws: run keymaker install --credentials-file FILE --profile NAME",
        ),
      );
  }
  // The SDK's IMDS defaults (1 s timeout, no retry) fit a login deadline; the endpoint comes from the host config (AWS_EC2_METADATA_SERVICE_ENDPOINT).
  return fromInstanceMetadata({ timeout: 1000, maxRetries: 0 });
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
    credentials: hostCredentialProvider(config),
    // Region and profile checks read the host config's files and settings only, not the caller's environment or home.
    configLookup: { env: awsEnvironmentFor(config), homedir: NO_AWS_FILE },
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

/** The lookup's IAM requests in parallel: the user, its key list, its groups (core/src/directory.ts). */
export const LOOKUP_IAM_CONNECTIONS = 3;

/**
 * Opens the lookup's IAM connections before its requests need them (the loader may have opened them
 * already). Not STS: a cached caller needs none (core/src/resolve.ts), and an unused connection is a
 * handshake for nothing. An endpoint that cannot be worked out is simply not pre-opened.
 */
function preconnectLookup(agent: PreconnectAgent, iam: { config: unknown }): void {
  void clientEndpoint(iam).then(
    (url) => agent.preconnect(url, LOOKUP_IAM_CONNECTIONS),
    () => undefined,
  );
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
  const iam = createIamClient(aws);
  const sts = createStsClient(aws);
  if (aws.httpsAgent instanceof PreconnectAgent) preconnectLookup(aws.httpsAgent, iam);
  return resolveDirectory({
    iam,
    sts,
    cache: cache?.store,
    configTtlMs: cache?.ttlMs,
    refresh: cache?.refresh,
    // The host runs as its role: a user's or the account root's credentials are an error, never "no config".
    requireRole: true,
    // Its credentials are the host config's one source (hostCredentialProvider), never a default chain.
    recogniseCallerByAccessKey: true,
    credentialsMarginMs: cache?.refresh ? WRITER_CREDENTIALS_MARGIN_MS : undefined,
    iamClientFor: (credentials) => createIamClient({ ...aws, credentials }),
  });
}
