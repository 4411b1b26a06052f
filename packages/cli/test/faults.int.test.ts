import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
import {
  createGroupWithMembers,
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
  type TestCredentials,
} from '../../../tools/moto/seed';
import { bareEnv, keymaker, writeHostConfig, type CliResult } from './cli-helpers';

import { createFaultProxy, startFakeImds } from '../../../tools/faults/fault-proxy.cjs';

jest.setTimeout(30_000);

// Fault injection between the lookup and IAM/STS (and instance metadata):
// every fault must end with no keys printed, a non-zero exit, within the deadline.
// The lookup takes endpoints and credentials from a host config only (never the environment), which
// must be root-owned: root only, like the hooks it stands for.
const ACCOUNT = '310000000101';
const DEADLINE_MS = 2000;
// Process start-up and exit on a loaded 2-core machine, on top of the deadline.
const SLACK_MS = 10_000;

let proxy: {
  url: string;
  setFault(f: object): Promise<void>;
  stop(): Promise<void>;
  stats(): { total: number; counts: Record<string, number> };
  resetStats(): void;
};
let instance: TestCredentials;
let dir: string;
let key: { publicKey: string };
let hostConfig: ReturnType<typeof writeHostConfig>;

// A root-owned host config is what the hooks trust; only root can write one.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

asRoot('lookup faults', () => {
  beforeAll(async () => {
    const endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
    const iam: IAMClient = iamClient(endpoint, admin);
    dir = mkdtempSync(join(tmpdir(), 'km-faults-'));
    key = makeSshKeyPair(dir, 'k');
    const other = makeSshKeyPair(dir, 'k2');
    await createUserWithKeys(iam, 'alice', [
      { body: key.publicKey, status: 'Active' },
      { body: other.publicKey, status: 'Active' },
    ]);
    await createGroupWithMembers(iam, 'ssh', ['alice']);
    const role = await createRoleWithDescription(iam, 'web', 'keymaker_require_iam_group=ssh');
    instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    proxy = await createFaultProxy({ target: endpoint }).start();
    hostConfig = writeHostConfig({ endpoint: proxy.url, credentials: instance, deadlineMs: DEADLINE_MS });
  });
  afterAll(async () => {
    await proxy?.stop();
    hostConfig?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => proxy.setFault({ kind: 'none' }));

  async function timedLookup(configFile = hostConfig.configFile): Promise<CliResult & { ms: number }> {
    const started = Date.now();
    // Root's own AWS settings in the environment must change nothing (issue 13, point 1).
    const env = bareEnv({
      AWS_ACCESS_KEY_ID: 'AKIAROOTOWNKEY000000',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_REGION: 'eu-west-3',
      AWS_PROFILE: 'root-own',
    });
    const result = await keymaker(['get_authorized_keys', 'alice', '--config', configFile], env);
    return { ...result, ms: Date.now() - started };
  }

  it('answers with both keys when nothing is wrong', async () => {
    const result = await timedLookup();
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toHaveLength(2);
  });

  describe.each([
    ['connection refused', { kind: 'refuse' }],
    ['a hang', { kind: 'hang' }],
    ['HTTP 500', { kind: 'status', status: 500 }],
    ['HTTP 503', { kind: 'status', status: 503 }],
    ['persistent throttling', { kind: 'throttle' }],
    ['answers slower than the deadline', { kind: 'slow', delayMs: DEADLINE_MS + 1000 }],
    ['connection reset', { kind: 'reset' }],
    ['throttling of the key bodies only', { kind: 'throttle', action: 'GetSSHPublicKey' }],
    ['a failure of the 2nd key body only', { kind: 'status', status: 500, action: 'GetSSHPublicKey', nth: 2 }],
    ['a failure of the group check only', { kind: 'status', status: 503, action: 'ListGroupsForUser' }],
    ['a failure reading the role description', { kind: 'throttle', action: 'GetRole' }],
  ])('%s', (_name, fault) => {
    it('prints no keys and exits non-zero within the deadline', async () => {
      await proxy.setFault(fault);
      const result = await timedLookup();
      expect(result.stdout).toBe('');
      expect(result.code).not.toBe(0);
      expect(result.ms).toBeLessThan(DEADLINE_MS + SLACK_MS);
    });
  });

  it('retries a short burst of throttling and then answers', async () => {
    await proxy.setFault({ kind: 'throttle', action: 'ListSSHPublicKeys', nth: 1, times: 1 });
    proxy.resetStats();
    // This tests the retry, not the deadline: a loaded machine may spend 2 s before the SDK's backoff ends.
    const roomy = writeHostConfig({ endpoint: proxy.url, credentials: instance, deadlineMs: 10_000 });
    const result = await timedLookup(roomy.configFile);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toHaveLength(2);
    expect(proxy.stats().counts.ListSSHPublicKeys).toBe(2);
  });

  describe('instance metadata', () => {
    let imds: { url: string; setFault(f: object): Promise<void>; stop(): Promise<void> };
    let imdsConfig: ReturnType<typeof writeHostConfig>;
    beforeAll(async () => {
      imds = await startFakeImds({ credentials: instance });
      // No credentials file: the host config's one source is then the instance role, through IMDS.
      imdsConfig = writeHostConfig({ endpoint: proxy.url, metadataEndpoint: imds.url, deadlineMs: DEADLINE_MS });
    });
    afterAll(async () => {
      await imds?.stop();
      imdsConfig?.cleanup();
    });
    const imdsEnv = () => imdsConfig.configFile;

    it('takes credentials from instance metadata', async () => {
      const result = await timedLookup(imdsEnv());
      expect(result.code).toBe(0);
      expect(result.stdout.trim().split('\n')).toHaveLength(2);
    });

    it.each([
      ['hangs', { kind: 'hang' }],
      ['refuses connections', { kind: 'refuse' }],
      ['answers 500', { kind: 'status', status: 500 }],
    ])('a metadata endpoint that %s costs about a second and fails closed', async (_name, fault) => {
      await imds.setFault(fault);
      const result = await timedLookup(imdsEnv());
      expect(result.stdout).toBe('');
      expect(result.code).not.toBe(0);
      expect(result.ms).toBeLessThan(1000 + SLACK_MS);
      await imds.setFault({ kind: 'none' });
    });
  });
});
