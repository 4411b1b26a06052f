import {
  createIamClient,
  createStsClient,
  DeadlineError,
  exitCodeFor,
  formatError,
  resolveDirectory,
  type AwsClientOptions,
  type CacheStore,
} from '@keymaker/core';

/**
 * The AuthorizedKeysCommand: what sshd runs at every login. It prints one
 * authorized_keys line per active, valid IAM key and exits 0, or prints
 * nothing and exits non-zero. It never prints a partial answer.
 */
export interface LookupRequest {
  /** The Linux login name sshd passes as %u. */
  user: string;
  /** The offered key's fingerprint (%f), for the log only. */
  fingerprint?: string;
}

export interface LookupIo {
  write(text: string): void;
  log(level: 'info' | 'warning' | 'error', message: string): void;
}

export interface LookupOptions {
  aws?: AwsClientOptions;
  cache?: CacheStore;
  /** Hard overall deadline; default 5 s. */
  deadlineMs?: number;
}

export const DEFAULT_LOOKUP_DEADLINE_MS = 5000;

export async function lookupAuthorizedKeys(request: LookupRequest, options: LookupOptions = {}): Promise<string[]> {
  const aws = options.aws ?? {};
  const iam = createIamClient(aws);
  const sts = createStsClient(aws);
  const resolution = await resolveDirectory({
    iam,
    sts,
    cache: options.cache,
    iamClientFor: (credentials) => createIamClient({ ...aws, credentials }),
  });
  const result = await resolution.directory.authorizedKeys(request.user);
  return result.keys.map((key) => key.line);
}

/** Runs a lookup under a hard deadline; resolves to the process exit code. */
export async function runLookup(request: LookupRequest, io: LookupIo, options: LookupOptions = {}): Promise<number> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_LOOKUP_DEADLINE_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`lookup for ${request.user} did not finish within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    const lines = await Promise.race([lookupAuthorizedKeys(request, options), deadline]);
    // One write: either every line or nothing reaches sshd.
    if (lines.length > 0) io.write(`${lines.join('\n')}\n`);
    io.log('info', `user=${request.user} fingerprint=${request.fingerprint ?? '-'} keys=${lines.length}`);
    return 0;
  } catch (error) {
    io.log('warning', `user=${request.user} fingerprint=${request.fingerprint ?? '-'} refused: ${formatError(error).replace(/^keymaker: /, '')}`);
    return exitCodeFor(error);
  } finally {
    clearTimeout(timer);
  }
}
