/*
 * Client construction in one place, so every command and the login hook get
 * the same region and profile rules, timeouts and retry policy. Building a
 * client makes no network call; it reads the shared config files only to
 * check a named profile or find the profile's region (see aws-config.ts).
 * Endpoints (AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL_STS) and credentials
 * follow the SDK's usual env/file/default chain unless given here.
 */
import type { Agent as HttpsAgent } from 'node:https';
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { resolveAwsSettings, type AwsConfigLookup } from './aws-config';
import { raceSignal, formatSeconds, type Deadline } from './deadline';
import { AwsError, DeadlineError } from './errors';
import type { TemporaryCredentials } from './resolve';

export interface AwsClientOptions {
  /** Explicit region; else AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then us-east-1. */
  region?: string;
  /** Overrides for tests and private endpoints. */
  iamEndpoint?: string;
  stsEndpoint?: string;
  /** A named profile from ~/.aws/config or ~/.aws/credentials (else AWS_PROFILE); must exist. */
  profile?: string;
  /**
   * Static credentials, or a provider (the host builds one from its host config, so the SDK's
   * default chain, which reads the caller's environment and home, is never consulted).
   */
  credentials?:
    TemporaryCredentials | { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | CredentialProvider;
  /** Per-request socket timeouts (ms). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** SDK attempts per call, including the first; retries use the SDK's jittered backoff. */
  maxAttempts?: number;
  /**
   * Overall deadline: every call gets its signal (`send(cmd, { abortSignal })`)
   * and fails with DEADLINE_EXCEEDED, naming the endpoint, once it fires.
   */
  deadline?: Deadline;
  /** Where the shared config files are looked up (tests). */
  configLookup?: AwsConfigLookup;
  /** The https agent the SDK's requests go through (the login path's pre-opened connections). */
  httpsAgent?: HttpsAgent;
}

/** The connect timeout when a deadline is given without one. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** An SDK credential provider (AwsCredentialIdentityProvider's shape). */
export type CredentialProvider = () => Promise<{
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}>;

function common(options: AwsClientOptions) {
  const credentials =
    typeof options.credentials === 'function'
      ? options.credentials
      : options.credentials && {
          accessKeyId: options.credentials.accessKeyId,
          secretAccessKey: options.credentials.secretAccessKey,
          sessionToken: options.credentials.sessionToken,
          ...('expiration' in options.credentials ? { expiration: new Date(options.credentials.expiration) } : {}),
        };
  // IAM and STS are global: with no region anywhere, sign for us-east-1 as the AWS CLI and boto3 do.
  const settings = resolveAwsSettings(options, options.configLookup);
  const connectionTimeout = connectTimeoutFor(options);
  return {
    region: settings.region,
    // Only an explicit profile goes to the SDK; AWS_PROFILE it reads itself.
    profile: options.profile,
    credentials,
    maxAttempts: options.maxAttempts,
    requestHandler: {
      connectionTimeout,
      requestTimeout: options.requestTimeoutMs,
      // Without it a request past requestTimeout only logs a warning and keeps waiting: a stalled
      // request then is never retried within the deadline. With it, it fails (TimeoutError,
      // transient) and the SDK retries it, up to maxAttempts.
      throwOnRequestTimeout: true,
      ...(options.httpsAgent ? { httpsAgent: options.httpsAgent } : {}),
    },
  };
}

function connectTimeoutFor(options: AwsClientOptions): number | undefined {
  return (
    options.connectionTimeoutMs ??
    (options.deadline ? Math.min(DEFAULT_CONNECT_TIMEOUT_MS, options.deadline.ms) : undefined)
  );
}

type SdkClient = IAMClient | STSClient;

/**
 * Every `send` of this client: gets the deadline's signal, and a hang or a
 * connect timeout becomes one line naming the endpoint that did not answer.
 */
function guard<C extends SdkClient>(client: C, options: AwsClientOptions, service: string, configured?: string): C {
  let lastEndpoint: string | undefined;
  // Recorded as each attempt goes out (after signing), so a hang is blamed on the endpoint actually called.
  type Next = (args: unknown) => Promise<unknown>;
  const stack = client.middlewareStack as unknown as { add(middleware: (next: Next) => Next, options: object): void };
  stack.add(
    (next) => async (args) => {
      const request = (args as { request?: { protocol?: string; hostname?: string; port?: number } }).request;
      if (request?.hostname)
        lastEndpoint = `${request.protocol ?? 'https:'}//${request.hostname}${request.port ? `:${request.port}` : ''}`;
      return next(args);
    },
    { step: 'deserialize', name: 'keymakerEndpointRecorder', priority: 'low' },
  );
  const endpoint = () => lastEndpoint ?? configured?.replace(/\/+$/, '') ?? `AWS ${service}`;
  const connectMs = connectTimeoutFor(options);
  const send = function (this: C, command: { constructor: { name: string } }, ...rest: unknown[]) {
    // Looked up per call, so aws-sdk-client-mock's stub of the class's send is honoured whenever it was installed.
    const prototypeSend = (Object.getPrototypeOf(this) as { send: (...args: unknown[]) => Promise<unknown> }).send;
    const operation = command.constructor.name.replace(/Command$/, '');
    const deadline = options.deadline;
    if (typeof rest[0] === 'function' || typeof rest[1] === 'function')
      return prototypeSend.call(this, command, ...rest);
    const sendOptions = { ...(deadline ? { abortSignal: deadline.signal } : {}), ...(rest[0] as object | undefined) };
    const call = prototypeSend.call(this, command, sendOptions).catch((error: unknown) => {
      const err = error as { name?: string; message?: string };
      if (err?.name === 'TimeoutError' && /without establishing a connection/i.test(String(err.message)) && connectMs) {
        throw new AwsError(
          'NETWORK',
          `could not connect to ${endpoint()} within ${formatSeconds(connectMs)} (${operation}); check network, --region and the endpoint`,
          { cause: error, operation, awsCode: 'TimeoutError' },
        );
      }
      throw error;
    });
    if (!deadline) return call;
    return raceSignal(
      call,
      deadline.signal,
      () =>
        new DeadlineError(
          `no answer from ${endpoint()} within ${formatSeconds(deadline.ms)} (${operation}); check network, --region and the endpoint, or raise --timeout`,
          { details: { endpoint: endpoint(), operation, timeoutMs: deadline.ms } },
        ),
    );
  };
  (client as unknown as { send: typeof send }).send = send;
  return client;
}

export function createIamClient(options: AwsClientOptions = {}): IAMClient {
  const client = new IAMClient({
    ...common(options),
    ...(options.iamEndpoint ? { endpoint: options.iamEndpoint } : {}),
  });
  return guard(
    client,
    options,
    'IAM',
    options.iamEndpoint ?? process.env.AWS_ENDPOINT_URL_IAM ?? process.env.AWS_ENDPOINT_URL,
  );
}

export function createStsClient(options: AwsClientOptions = {}): STSClient {
  const client = new STSClient({
    ...common(options),
    ...(options.stsEndpoint ? { endpoint: options.stsEndpoint } : {}),
  });
  return guard(
    client,
    options,
    'STS',
    options.stsEndpoint ?? process.env.AWS_ENDPOINT_URL_STS ?? process.env.AWS_ENDPOINT_URL,
  );
}
