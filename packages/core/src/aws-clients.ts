import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import type { TemporaryCredentials } from './resolve';

/**
 * Client construction in one place, so every command and the login hook get
 * the same timeouts and retry policy. Building a client does no I/O; region,
 * endpoints (AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL_STS) and credentials
 * follow the SDK's usual env/file/default chain unless given here.
 */
export interface AwsClientOptions {
  region?: string;
  /** Overrides for tests and private endpoints. */
  iamEndpoint?: string;
  stsEndpoint?: string;
  /** A named profile from ~/.aws/config or ~/.aws/credentials. */
  profile?: string;
  credentials?: TemporaryCredentials | { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Per-request socket timeouts (ms). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** SDK attempts per call, including the first; retries use the SDK's jittered backoff. */
  maxAttempts?: number;
}

function common(options: AwsClientOptions) {
  const credentials = options.credentials && {
    accessKeyId: options.credentials.accessKeyId,
    secretAccessKey: options.credentials.secretAccessKey,
    sessionToken: options.credentials.sessionToken,
    ...('expiration' in options.credentials ? { expiration: new Date(options.credentials.expiration) } : {}),
  };
  return {
    // IAM is a global service whose endpoint lives in us-east-1; a region is still required to sign.
    region: options.region,
    profile: options.profile,
    credentials,
    maxAttempts: options.maxAttempts,
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
    },
  };
}

export function createIamClient(options: AwsClientOptions = {}): IAMClient {
  return new IAMClient({ ...common(options), ...(options.iamEndpoint ? { endpoint: options.iamEndpoint } : {}) });
}

export function createStsClient(options: AwsClientOptions = {}): STSClient {
  return new STSClient({ ...common(options), ...(options.stsEndpoint ? { endpoint: options.stsEndpoint } : {}) });
}
