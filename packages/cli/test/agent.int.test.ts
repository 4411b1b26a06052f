// The real `keymaker agent` process (built CLI) against moto, queried over its two sockets: Varlink
// GetUserRecord (what libnss-systemd asks) and the keys socket (what sshd's AuthorizedKeysCommand asks).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteSSHPublicKeyCommand,
  DeleteUserCommand,
  ListSSHPublicKeysCommand,
  RemoveUserFromGroupCommand,
} from '@aws-sdk/client-iam';
import { unixIdFor } from '@keymaker/core';
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
} from '../../../tools/moto/seed';
import { call, httpGet as get } from '../../host/test/agent-client';
import { KEYMAKER_BIN, bareEnv, writeHostConfig } from './cli-helpers';

const ACCOUNT = '310000000031';
const SERVICE = 'io.keymaker.inttest';
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

async function until(ok: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

asRoot('keymaker agent (real process, moto)', () => {
  const endpoint = motoEndpoint();
  let dir: string;
  let host: ReturnType<typeof writeHostConfig>;
  let agent: ChildProcess;
  let stderr = '';
  let userdbSocket: string;
  let keysSocket: string;
  let aliceId: string;
  let iam: ReturnType<typeof iamClient>;
  const keys: Record<string, string> = {};

  const record = (name: string) =>
    call(userdbSocket, 'io.systemd.UserDatabase.GetUserRecord', { service: SERVICE, userName: name });
  /** A first resolution may miss the 1 s Varlink deadline and finish in the background: ask again, as NSS callers do. */
  async function settledRecord(name: string) {
    let replies = await record(name);
    for (let i = 0; i < 10 && replies[0]?.error === 'io.systemd.UserDatabase.ServiceNotAvailable'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      replies = await record(name);
    }
    return replies[0];
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'km-agent-'));
    const admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'web', 'Web fleet. keymaker_require_iam_group=ssh_users');
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    for (const name of ['a1', 'a2', 'b1']) keys[name] = makeSshKeyPair(dir, name).publicKey;
    ({ userId: aliceId } = await createUserWithKeys(iam, 'alice', [
      { body: keys.a1!, status: 'Active' },
      { body: keys.a2!, status: 'Inactive' },
    ]));
    await createUserWithKeys(iam, 'bob', [{ body: keys.b1!, status: 'Active' }]);
    await createGroupWithMembers(iam, 'ssh_users', ['alice']);
    host = writeHostConfig({ endpoint, credentials: instance });
    userdbSocket = join(dir, SERVICE);
    keysSocket = join(dir, 'keys.sock');
    agent = spawn(
      process.execPath,
      [
        KEYMAKER_BIN,
        'agent',
        '--config',
        host.configFile,
        '--userdb-socket',
        userdbSocket,
        '--keys-socket',
        keysSocket,
        '--refresh-seconds',
        '2',
      ],
      { env: bareEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    agent.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await until(() => existsSync(userdbSocket) && existsSync(keysSocket), `the agent's sockets (stderr: ${stderr})`);
  }, 60_000);
  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
    }
    host?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an IAM user in the required group: a user record with the derived UID, and her active key', async () => {
    const reply = await settledRecord('alice');
    expect(reply).toMatchObject({
      parameters: { record: { userName: 'alice', uid: unixIdFor(aliceId, 'wide'), service: SERVICE } },
    });
    const answer = await get(keysSocket, '/keys/alice');
    expect(answer).toEqual({ status: 200, body: `${keys.a1}\n` });
    // Warm: both answers from the agent's memory, timed for the report.
    const started = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) await record('alice');
    const warmMs = Number(process.hrtime.bigint() - started) / 1e6 / 20;
    expect(warmMs).toBeLessThan(1000);
    process.stderr.write(`agent.int: warm GetUserRecord ${warmMs.toFixed(2)} ms per call\n`);
  });

  test('unknown names and IAM users outside the required group are not found and get no keys', async () => {
    expect(await settledRecord('nobody')).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(await get(keysSocket, '/keys/nobody')).toEqual({ status: 404, body: '' });
    expect(await settledRecord('bob')).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(await get(keysSocket, '/keys/bob')).toEqual({ status: 404, body: '' });
  });

  test('GET /status reports the agent serving, with its caches and IAM latency', async () => {
    const { status, body } = await get(keysSocket, '/status');
    expect(status).toBe(200);
    const parsed = JSON.parse(body) as { state: string; caches: { users: number }; iam: { calls: number } };
    expect(parsed).toMatchObject({ state: 'serving', caches: { users: 1 } });
    expect(parsed.iam.calls).toBeGreaterThan(0);
    process.stderr.write(`agent.int: status ${body}`);
  });

  test('after the IAM user is deleted, one refresh later she is not found and gets no keys', async () => {
    const listed = await iam.send(new ListSSHPublicKeysCommand({ UserName: 'alice' }));
    for (const key of listed.SSHPublicKeys ?? [])
      await iam.send(new DeleteSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyId: key.SSHPublicKeyId! }));
    await iam.send(new RemoveUserFromGroupCommand({ GroupName: 'ssh_users', UserName: 'alice' }));
    await iam.send(new DeleteUserCommand({ UserName: 'alice' }));
    await until(
      async () => (await record('alice'))[0]?.error === 'io.systemd.UserDatabase.NoRecordFound',
      'alice revoked',
      10_000,
    );
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 404, body: '' });
    expect(stderr).toMatch(/revoked alice \(IAM user alice, uid \d+\): no-iam-user/);
  });

  test('SIGTERM: exit 0, both socket files removed', async () => {
    const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(userdbSocket)).toBe(false);
    expect(existsSync(keysSocket)).toBe(false);
  });
});
