import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(__dirname, '..', '..', '..');
export const KEYMAKER_BIN = join(REPO_ROOT, 'packages', 'cli', 'dist', 'keymaker.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AwsEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  region?: string;
}

/** A clean environment: only what the test gives, so the developer's own AWS setup never leaks in. */
export function awsEnv(aws: AwsEnv, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    AWS_ENDPOINT_URL_IAM: aws.endpoint,
    AWS_ENDPOINT_URL_STS: aws.endpoint,
    AWS_ACCESS_KEY_ID: aws.accessKeyId,
    AWS_SECRET_ACCESS_KEY: aws.secretAccessKey,
    ...(aws.sessionToken ? { AWS_SESSION_TOKEN: aws.sessionToken } : {}),
    AWS_REGION: aws.region ?? 'us-east-1',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  };
}

/** Runs the built CLI as a real process. */
export function keymaker(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KEYMAKER_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/**
 * A host config (what `keymaker install` writes to /etc/keymaker) in a fresh directory under /run:
 * root-owned and not world-writable, as the trusted-file rule requires (never below /tmp, or a clone
 * that may sit there). Host commands take credentials and endpoints from it only, never from the
 * environment; pass `--config` to reach it. Root only.
 */
export function writeHostConfig(config: {
  endpoint: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  metadataEndpoint?: string;
  deadlineMs?: number;
}): { configFile: string; dir: string; cleanup(): void } {
  const dir = mkdtempSync('/run/keymaker-cli-hostcfg-');
  chmodSync(dir, 0o755);
  const files: Record<string, string> = {};
  if (config.credentials) {
    const { accessKeyId, secretAccessKey, sessionToken } = config.credentials;
    files.sharedCredentialsFile = join(dir, 'credentials');
    writeFileSync(
      files.sharedCredentialsFile,
      `[default]\naws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}\n` +
        (sessionToken ? `aws_session_token = ${sessionToken}\n` : ''),
      { mode: 0o640 },
    );
    files.sharedConfigFile = join(dir, 'aws-config');
    writeFileSync(files.sharedConfigFile, '', { mode: 0o640 });
  }
  const configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      version: 1,
      iamEndpoint: config.endpoint,
      stsEndpoint: config.endpoint,
      ...files,
      ...(config.metadataEndpoint ? { metadataEndpoint: config.metadataEndpoint } : {}),
      ...(config.deadlineMs ? { deadlineMs: config.deadlineMs } : {}),
    }),
    { mode: 0o644 },
  );
  return { configFile, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Nothing about AWS in the environment: a host command's endpoints and credentials can only come from its host config. */
export function bareEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', ...extra };
}
