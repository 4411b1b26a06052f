import { spawn } from 'node:child_process';
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
