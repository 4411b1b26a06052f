import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
  type TestCredentials,
} from '../../../tools/moto/seed';
import { awsEnv, bareEnv as bareEnvOf, keymaker, writeHostConfig } from './cli-helpers';

import { createFaultProxy } from '../../../tools/faults/fault-proxy.cjs';

jest.setTimeout(60_000);

// The AWS CLI's conventions, through the real CLI against moto: no region needed (IAM/STS are
// global), --profile and AWS_PROFILE (an unknown one named, exit 24), --timeout (exit 21 naming the
// endpoint), and on a host the host config read as the hooks read it.
const ACCOUNT = '310000000201';
const EXIT_UNKNOWN_PROFILE = 24;
const EXIT_DEADLINE = 21;
const EXIT_INVALID_ARGUMENT = 3;

let endpoint: string;
let admin: TestCredentials;
let dir: string;
let keyId: string;

beforeAll(async () => {
  endpoint = motoEndpoint();
  admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
  dir = mkdtempSync(join(tmpdir(), 'km-awsconv-'));
  const key = makeSshKeyPair(dir, 'k');
  // get_uid/get_groups read the role behind the credentials (its description is the role config).
  await createRoleWithDescription(iamClient(endpoint, admin), 'admin', 'test account, no keymaker tokens');
  const { keyIds } = await createUserWithKeys(iamClient(endpoint, admin), 'alice', [
    { body: key.publicKey, status: 'Active' },
  ]);
  keyId = keyIds[0]!;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The test's environment without any region variable. */
function noRegionEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = awsEnv({ endpoint, ...admin }, extra);
  delete env.AWS_REGION;
  delete env.AWS_DEFAULT_REGION;
  return env;
}

it('a client command works with no region configured anywhere (signs for us-east-1)', async () => {
  const result = await keymaker(['list_keys', '--user', 'alice'], noRegionEnv());
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain(keyId);
});

it('get_uid works with no region and no host config (a client command)', async () => {
  const result = await keymaker(['get_uid', 'alice', '--config', join(dir, 'no-such-config.json')], noRegionEnv());
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout.trim()).toMatch(/^\d+$/);
});

describe('unknown profile', () => {
  it.each([
    ['--profile nosuch', ['list_keys', '--user', 'alice', '--profile', 'nosuch'], {}, '--profile'],
    ['AWS_PROFILE=nosuch', ['list_keys', '--user', 'alice'], { AWS_PROFILE: 'nosuch' }, 'AWS_PROFILE'],
    ['--profile nosuch on get_uid', ['get_uid', 'alice', '--profile', 'nosuch'], {}, '--profile'],
  ])('%s is named, with the files looked in, and exits 24', async (_name, args, extra, source) => {
    const configFile = join(dir, 'config');
    const credentialsFile = join(dir, 'credentials');
    writeFileSync(configFile, '[profile other]\nregion = eu-west-1\n');
    writeFileSync(credentialsFile, '[other]\naws_access_key_id = x\naws_secret_access_key = y\n');
    const result = await keymaker(
      args,
      noRegionEnv({ AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: credentialsFile, ...extra }),
    );
    expect(result.code).toBe(EXIT_UNKNOWN_PROFILE);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"nosuch"');
    expect(lines[0]).toContain(source);
    expect(lines[0]).toContain(configFile);
    expect(lines[0]).toContain(credentialsFile);
    expect(lines[0]).not.toMatch(/region/i);
  });
});

it('--profile with a real profile in AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE uses its credentials', async () => {
  const configFile = join(dir, 'config-real');
  const credentialsFile = join(dir, 'credentials-real');
  writeFileSync(configFile, '[profile ops]\nregion = eu-central-1\n');
  writeFileSync(
    credentialsFile,
    `[ops]\naws_access_key_id = ${admin.accessKeyId}\naws_secret_access_key = ${admin.secretAccessKey}\n` +
      (admin.sessionToken ? `aws_session_token = ${admin.sessionToken}\n` : ''),
  );
  const env = noRegionEnv({ AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: credentialsFile });
  // No credentials in the environment: only the profile can supply them.
  delete env.AWS_ACCESS_KEY_ID;
  delete env.AWS_SECRET_ACCESS_KEY;
  delete env.AWS_SESSION_TOKEN;
  const result = await keymaker(['list_keys', '--user', 'alice', '--profile', 'ops'], env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain(keyId);
});

describe('an endpoint that accepts and never answers', () => {
  let proxy: { url: string; setFault(f: object): Promise<void>; stop(): Promise<void> };
  beforeAll(async () => {
    proxy = await createFaultProxy({ target: endpoint }).start();
    await proxy.setFault({ kind: 'hang' });
  });
  afterAll(() => proxy?.stop());

  it.each([
    ['list_keys --user alice', ['list_keys', '--user', 'alice'], 'ListSSHPublicKeys'],
    ['list_keys (current user)', ['list_keys'], 'GetCallerIdentity'],
    ['get_groups alice', ['get_groups', 'alice'], 'GetCallerIdentity'],
  ])('%s: one line naming the endpoint, exit 21, when --timeout passes', async (_name, args, operation) => {
    const env = awsEnv({ endpoint: proxy.url, ...admin });
    const started = Date.now();
    const result = await keymaker([...args, '--timeout', '2'], env);
    const elapsed = Date.now() - started;
    expect(result.code).toBe(EXIT_DEADLINE);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `keymaker: no answer from ${proxy.url} within 2 s (${operation}); check network, --region and the endpoint, or raise --timeout\n`,
    );
    // The deadline cancels the hung request: the process ends soon after it, not minutes later.
    expect(elapsed).toBeLessThan(15_000);
  });
});

it.each([['abc'], ['0'], ['-5'], ['99999']])(
  '--timeout %s is refused in one line naming the option (exit 3)',
  async (value) => {
    const result = await keymaker(['list_keys', '--user', 'alice', `--timeout=${value}`], noRegionEnv());
    expect(result.code).toBe(EXIT_INVALID_ARGUMENT);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`--timeout "${value}"`);
  },
);

// The host config's trusted-file rule needs root-owned files in root-owned directories.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
asRoot('on a host: get_uid, get_groups, get_authorized_keys read the host config as the hooks do', () => {
  let hostDir: string;
  let configFile: string;
  let host: ReturnType<typeof writeHostConfig>;
  beforeAll(() => {
    host = writeHostConfig({ endpoint, credentials: admin });
    configFile = host.configFile;
    hostDir = host.dir;
  });
  afterAll(() => host?.cleanup());

  /** Nothing about AWS in the environment: endpoints and credentials can only come from the host config. */
  const bareEnv = () => bareEnvOf({ HOME: hostDir, AWS_EC2_METADATA_DISABLED: 'true', KEYMAKER_DEADLINE_MS: '10000' });

  it('get_uid and get_groups answer from the IAM the host config names', async () => {
    const uid = await keymaker(['get_uid', 'alice', '--config', configFile], bareEnv());
    expect(uid.stderr).toBe('');
    expect(uid.code).toBe(0);
    expect(uid.stdout.trim()).toMatch(/^\d+$/);
    const groups = await keymaker(['get_groups', 'alice', '--config', configFile, '--json'], bareEnv());
    expect(groups.stderr).toBe('');
    expect(groups.code).toBe(0);
    expect(JSON.parse(groups.stdout)).toEqual([]);
  });

  it('get_authorized_keys through the CLI (with flags) prints the key as the hook would', async () => {
    const result = await keymaker(['get_authorized_keys', 'alice', '--config', configFile], bareEnv());
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ssh-ed25519 /);
  });

  it('without the host config the same environment has no endpoint or credentials: it fails', async () => {
    const result = await keymaker(
      ['get_uid', 'alice', '--config', join(hostDir, 'absent.json'), '--timeout', '5'],
      bareEnv(),
    );
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
  });
});
