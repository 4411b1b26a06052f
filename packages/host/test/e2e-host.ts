// Shared set-up for the runtime's e2e tests: a host bundle built from the sources, a hand-made
// install (sshd drop-in, PAM line, wrappers, config) that mirrors the contracts in
// DEFAULT_PATHS, a syslog listener, and moto accounts seeded per test file.
// TODO: swap installByHand for the real `keymaker install` once it is committed.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Sandbox } from '../../../tools/sandbox/sandbox';
import { DEFAULT_PATHS } from '../src/system/paths';
import { managedMatchLines } from '../src/install/sshd-config';
import type { HostConfig } from '../src/config/host-config';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const SYSLOG_SOCKET = '/run/keymaker-test-syslog.sock';
export const SYSLOG_FILE = '/run/keymaker-test-syslog.log';
const CREDENTIALS_FILE = '/etc/keymaker/aws-credentials';

/** Bundles a TypeScript entry into one ESM file (the way tsup builds the host bundle). */
export async function bundleEntry(entry: string, outfile: string): Promise<string> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as typeof import('esbuild');
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    tsconfig: path.join(REPO_ROOT, 'packages/cli/tsconfig.json'),
    logLevel: 'error',
    banner: {
      js: "import { createRequire as __kmCreateRequire } from 'node:module'; const require = __kmCreateRequire(import.meta.url);",
    },
  });
  return outfile;
}

/** Builds the self-contained host bundle from the sources into a private dir (no shared dist/ race). */
export async function buildHostBundle(): Promise<string> {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-host-bundle.'));
  return bundleEntry(path.join(REPO_ROOT, 'packages/cli/src/host-entry.ts'), path.join(outDir, 'keymaker-host.mjs'));
}

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export function credentialsFileText(creds: AwsCredentials): string {
  return [
    '[default]',
    `aws_access_key_id = ${creds.accessKeyId}`,
    `aws_secret_access_key = ${creds.secretAccessKey}`,
    ...(creds.sessionToken ? [`aws_session_token = ${creds.sessionToken}`] : []),
    '',
  ].join('\n');
}

export function hostConfigFor(endpoint: string, extra: Partial<HostConfig> = {}): HostConfig {
  return {
    version: 1,
    region: 'us-east-1',
    iamEndpoint: endpoint,
    stsEndpoint: endpoint,
    // Nothing answers there: a real IMDS must never be reached from a test.
    metadataEndpoint: 'http://127.0.0.1:9',
    sharedCredentialsFile: CREDENTIALS_FILE,
    deadlineMs: 8000,
    authorizedKeysCommandUser: 'keymaker',
    syncIntervalMinutes: 5,
    preProvisionAccounts: false,
    allowedExistingGroups: [],
    reservedNames: [],
    cacheTtlSeconds: 300,
    syslogSocket: SYSLOG_SOCKET,
    ...extra,
  };
}

/** `keymaker install` as the e2e suites run it: IAM at `endpoint`, credentials in /root, this sandbox's sshd. */
export function installArgs(endpoint: string, port: number): string[] {
  return [
    'install',
    '--region',
    'us-east-1',
    '--iam-endpoint',
    endpoint,
    '--sts-endpoint',
    endpoint,
    '--credentials-file',
    '/root/aws-credentials',
    '--deadline-ms',
    '8000',
    '--sshd-pid-file',
    `/run/sshd-${port}.pid`,
    // The compat-mode suites' default (the sandbox has libnss-systemd, so "auto" would be agent); agent-mode
    // suites append --mode agent, and the last one wins.
    '--mode',
    'compat',
  ];
}

/** The account's passwd line inside the sandbox, or undefined when there is none. */
export async function passwdEntry(sb: Sandbox, name: string): Promise<string | undefined> {
  const r = await sb.exec(['getent', 'passwd', name]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/**
 * `getent DB NAME` inside the sandbox until it answers (10 tries, 300 ms apart), or undefined: through the agent, a
 * first resolution slower than its deadline answers "not found" and finishes in the background (issue 11).
 */
export async function resolvesThroughAgent(
  sb: Sandbox,
  db: 'passwd' | 'shadow',
  name: string,
): Promise<string | undefined> {
  for (let i = 0; i < 10; i++) {
    const r = await sb.exec(['getent', db, name]);
    if (r.code === 0) return r.stdout.trim();
    await new Promise((done) => setTimeout(done, 300));
  }
  return undefined;
}

export async function writeHostConfig(sb: Sandbox, config: HostConfig, file = DEFAULT_PATHS.configFile): Promise<void> {
  await sb.writeFile(file, `${JSON.stringify(config, null, 2)}\n`, 0o644);
}

export async function writeCredentials(sb: Sandbox, creds: AwsCredentials): Promise<void> {
  await sb.writeFile(CREDENTIALS_FILE, credentialsFileText(creds), 0o640, 'root:keymaker');
}

const SYSLOG_LISTENER = `
import os, socket
path = ${JSON.stringify(SYSLOG_SOCKET)}
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(${JSON.stringify(SYSLOG_FILE)}, 'ab', 0) as f:
    while True:
        data, _ = s.recvfrom(65536)
        f.write(data.rstrip(b'\\n') + b'\\n')
`;

/** What sshd/PAM need, set up the way the install contracts describe it. */
export async function installByHand(
  sb: Sandbox,
  bundle: string,
  config: HostConfig,
  creds: AwsCredentials,
): Promise<void> {
  const p = DEFAULT_PATHS;
  const node = fs.realpathSync(process.execPath);
  await sb.execOk([
    'useradd',
    '--system',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    '--comment',
    'Keymaker SSH key daemon',
    'keymaker',
  ]);
  await sb.writeFile(p.hostBundle, fs.readFileSync(bundle), 0o644);
  const wrapper = (command: string, args: string) => `#!/bin/sh\nexec ${node} ${p.hostBundle} ${command}${args}\n`;
  await sb.writeFile(p.authorizedKeysCommand, wrapper('get_authorized_keys', ' "$@"'), 0o755);
  await sb.writeFile(p.pamCreateAccountCommand, wrapper('pam_create_account', ''), 0o755);
  await sb.writeFile(p.syncGroupsCommand, wrapper('sync_groups', ' "$@"'), 0o755);
  await sb.writeFile(
    p.sshdDropIn,
    [
      `AuthorizedKeysCommand ${p.authorizedKeysCommand} %u %f`,
      'AuthorizedKeysCommandUser keymaker',
      'KbdInteractiveAuthentication yes',
      'AuthenticationMethods publickey keyboard-interactive:pam,publickey',
      // As install writes it: keymaker accounts authenticate only through IAM (issue 12).
      ...managedMatchLines(),
      '',
    ].join('\n'),
  );
  const pam = await sb.readFile(p.pamSshd);
  const lines = pam.split('\n');
  const first = lines.findIndex((line) => /^\s*(auth\s|@include\s+common-auth)/.test(line));
  lines.splice(first, 0, `auth optional pam_exec.so quiet stdout ${p.pamCreateAccountCommand}`);
  await sb.writeFile(p.pamSshd, lines.join('\n'));
  await writeHostConfig(sb, config);
  await writeCredentials(sb, creds);
  await startSyslogListener(sb);
}

export async function startSyslogListener(sb: Sandbox): Promise<void> {
  await sb.execOk(['bash', '-c', 'setsid python3 -c "$0" </dev/null >/dev/null 2>&1 &', SYSLOG_LISTENER]);
  for (let i = 0; i < 50 && !(await sb.exists(SYSLOG_SOCKET)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await sb.exists(SYSLOG_SOCKET))) throw new Error('syslog listener did not start');
}

/** Syslog lines written since `from` lines (returns all lines and the new count). */
export async function syslogLines(sb: Sandbox): Promise<string[]> {
  if (!(await sb.exists(SYSLOG_FILE))) return [];
  return (await sb.readFile(SYSLOG_FILE)).split('\n').filter(Boolean);
}

/** A random 12-digit moto account, so test files sharing one moto server never see each other. */
export function randomAccountId(): string {
  return String(100000000000 + Math.floor(Math.random() * 899999999999));
}

/**
 * An HTTP proxy in front of moto that answers one IAM action (optionally only for one
 * parameter value) with a Throttling error: a real mid-sync failure.
 */
export async function startFailingProxy(
  target: string,
): Promise<{ url: string; failWhen: (pattern: RegExp | undefined) => void; close: () => Promise<void> }> {
  let pattern: RegExp | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (pattern && pattern.test(body.toString('utf8'))) {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(
          '<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>',
        );
        return;
      }
      const url = new URL(req.url ?? '/', target);
      const upstream = http.request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    failWhen: (p) => (pattern = p),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * A real ssh client on a terminal, with LogLevel=INFO: the sandbox's client runs at LogLevel=ERROR,
 * which hides the text PAM shows during keyboard-interactive (the "account created" message), and ssh
 * only shows PAM's text on a terminal. `bind` picks a 127.x source address (sshd listens on 127.0.0.1
 * and sees it as PAM_RHOST); with no identity it offers no key at all: keyboard-interactive only.
 */
/** sshOnTerminal with a key. */
export function sshShowingPamText(port: number, user: string, identityFile: string) {
  return sshOnTerminal(port, user, { identityFile });
}

export function sshOnTerminal(
  port: number,
  user: string,
  o: { identityFile?: string; bind?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFile } = require('node:child_process') as typeof import('node:child_process');
  const auth = o.identityFile
    ? [
        '-i',
        o.identityFile,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'PreferredAuthentications=publickey,keyboard-interactive',
      ]
    : ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive'];
  const argv = [
    '-F',
    '/dev/null',
    ...(o.bind ? ['-b', o.bind] : []),
    ...auth,
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=no',
    '-o',
    'NumberOfPasswordPrompts=1',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=INFO',
    '-o',
    'ConnectTimeout=5',
    '-p',
    String(port),
    `${user}@127.0.0.1`,
    '--',
    'id -un',
  ];
  const quoted = ['ssh', ...argv].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return new Promise((resolve) => {
    const child = execFile(
      'script',
      ['-qec', quoted, '/dev/null'],
      {
        timeout: 20_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SSH_ASKPASS_REQUIRE: 'never', TERM: 'dumb' },
      },
      (error, stdout, stderr) => {
        const code = error
          ? typeof (error as { code?: unknown }).code === 'number'
            ? (error as { code: number }).code
            : 255
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    // Answer the password prompt with an empty line once it is up (an earlier newline would be flushed by ssh).
    const answer = setInterval(() => child.stdin?.write('\n'), 700);
    child.on('exit', () => clearInterval(answer));
  });
}
