// The agent's keys server against moto, through the real client script sshd runs (curl --unix-socket),
// counting the HTTP requests that reach IAM.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createIamClient, resolveRoleConfig } from '@keymaker/core';
import {
  createGroupWithMembers,
  createUserWithKeys,
  iamClient,
  makeSshKeyPair,
  motoEndpoint,
} from '../../../tools/moto/seed';
import { KEYS_CLIENT_SCRIPT, keysClientScript } from '../src/agent/keys-client-script';
import { KeysServer, IamKeysSource } from '../src/agent/keys-server';
import type { Clock } from '../src/agent/keys-cache';

// The script as install writes it, run from a private file.
const CLIENT = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-keys-client-')), 'keymaker-keys-client');
fs.writeFileSync(CLIENT, KEYS_CLIENT_SCRIPT, { mode: 0o755 });

function runClient(
  socket: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      '/bin/sh',
      [CLIENT, ...args],
      { env: { KEYMAKER_KEYS_SOCKET: socket, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('keys server against moto, through keymaker-keys-client', () => {
  const endpoint = motoEndpoint();
  const seed = iamClient(endpoint);
  const suffix = Math.random().toString(36).slice(2, 8);
  const user = `keysint${suffix}`;
  const outsider = `keysout${suffix}`;
  const group = `keys-ssh-users-${suffix}`;
  let tmp: string;
  let socket: string;
  let server: KeysServer;
  const clock: Clock & { t: number } = {
    t: 0,
    now() {
      return this.t;
    },
  };
  const requests: string[] = [];
  let active: string[];
  let inactive: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-keys-int-'));
    fs.chmodSync(tmp, 0o750);
    socket = path.join(tmp, 'keys.sock');
    const k1 = makeSshKeyPair(tmp, 'k1');
    const k2 = makeSshKeyPair(tmp, 'k2');
    const k3 = makeSshKeyPair(tmp, 'k3');
    active = [k1.publicKey, k2.publicKey];
    inactive = k3.publicKey;
    await createUserWithKeys(seed, user, [
      { body: k1.publicKey, status: 'Active' },
      { body: k2.publicKey, status: 'Active' },
      { body: k3.publicKey, status: 'Inactive' },
    ]);
    await createUserWithKeys(seed, outsider, [{ body: k1.publicKey, status: 'Active' }]);
    await createGroupWithMembers(seed, group, [user]);

    // ONE long-lived client, as the agent holds it; every HTTP request to IAM is recorded.
    const iam = createIamClient({
      iamEndpoint: endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    });
    type Next = (args: unknown) => Promise<unknown>;
    (
      iam.middlewareStack as unknown as {
        add(m: (next: Next, context: { commandName?: string }) => Next, o: object): void;
      }
    ).add(
      (next, context) => async (args) => {
        requests.push(String(context.commandName).replace(/Command$/, ''));
        return next(args);
      },
      { step: 'finalizeRequest', name: 'countRequests' },
    );
    const source = new IamKeysSource(iam, resolveRoleConfig({ requireIamGroup: group }));
    server = new KeysServer({ source, clock, answerTtlMs: 5000, deadlineMs: 3000 });
    await server.listen({ path: socket });
  });

  afterAll(async () => {
    await server?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('exactly the two active keys; 4 IAM requests cold, 0 for the second call, 2 after the TTL', async () => {
    requests.length = 0;
    const timed = async () => {
      const started = performance.now();
      const result = await runClient(socket, [user]);
      ms.push(Math.round(performance.now() - started));
      return result;
    };
    const ms: number[] = [];
    const first = await timed();
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('');
    const lines = first.stdout.split('\n').filter(Boolean);
    expect(lines.sort()).toEqual([...active].map((k) => k.split(' ').slice(0, 2).join(' ')).sort());
    expect(first.stdout).not.toContain(inactive.split(' ')[1]);
    // Cold: key list + group check in parallel, then both bodies (never seen before).
    expect([...requests].sort()).toEqual([
      'GetSSHPublicKey',
      'GetSSHPublicKey',
      'ListGroupsForUser',
      'ListSSHPublicKeys',
    ]);

    requests.length = 0;
    const second = await timed();
    expect(second).toEqual(first);
    expect(requests).toEqual([]);

    // A later login: the bodies are cached by key ID, so one wave of two requests.
    clock.t += 5000;
    requests.length = 0;
    const later = await timed();
    expect(later.stdout).toBe(first.stdout);
    expect([...requests].sort()).toEqual(['ListGroupsForUser', 'ListSSHPublicKeys']);
    console.log(
      `client call latency (ms, incl. process start): cold ${ms[0]}, second call ${ms[1]}, after the TTL ${ms[2]}`,
    );
  });

  test('not in the required group, unknown, invalid: nothing printed, non-zero', async () => {
    for (const args of [[outsider], [`nosuch${suffix}`], ['root'], ['Bad'], ['a;b'], ['../x'], [user, 'MD5:xx'], []]) {
      const result = await runClient(socket, args);
      expect(result.stdout).toBe('');
      expect(result.code).not.toBe(0);
    }
  });

  test('with the fingerprint (%f): only the offered key', async () => {
    const { execFileSync } = await import('node:child_process');
    const fp = execFileSync('ssh-keygen', ['-lf', '-'], { input: active[1]! }).toString().split(' ')[1]!;
    const result = await runClient(socket, [user, fp]);
    expect(result).toMatchObject({ code: 0, stdout: `${active[1]!.split(' ').slice(0, 2).join(' ')}\n` });
  });

  test('an agent that accepts but never answers: exit 28 at --max-time, nothing printed', async () => {
    const stuck = path.join(tmp, 'stuck.sock');
    const net = await import('node:net');
    const held: import('node:net').Socket[] = [];
    const silent = net.createServer((connection) => held.push(connection));
    await new Promise<void>((resolve) => silent.listen(stuck, resolve));
    const started = Date.now();
    const result = await runClient(stuck, [user], { KEYMAKER_KEYS_MAX_TIME: '1' });
    expect(result).toMatchObject({ code: 28, stdout: '' });
    expect(Date.now() - started).toBeLessThan(10_000);
    held.forEach((connection) => connection.destroy());
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  test('agent not reachable: exit 7, nothing printed', async () => {
    const result = await runClient(path.join(tmp, 'absent.sock'), [user]);
    expect(result).toMatchObject({ code: 7, stdout: '' });
  });
});

// The compat lookup the installed client hands /etc/passwd accounts to: here a script that prints what it got.
describe('keymaker-keys-client with the compat lookup as fallback', () => {
  let tmp: string;
  let client: string;
  let status = 200;
  let body = '';
  let socket: string;
  let server: import('node:http').Server;
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-keys-fallback-'));
    const fallback = path.join(tmp, 'compat-lookup');
    fs.writeFileSync(fallback, '#!/bin/sh\necho "compat lookup: $*"\n', { mode: 0o755 });
    client = path.join(tmp, 'keymaker-keys-client');
    fs.writeFileSync(client, keysClientScript(fallback), { mode: 0o755 });
    socket = path.join(tmp, 'keys.sock');
    const http = await import('node:http');
    server = http.createServer((_request, response) => {
      response.writeHead(status, { 'Content-Length': Buffer.byteLength(body) });
      response.end(body);
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const run = (sock: string, args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile('/bin/sh', [client, ...args], { env: { KEYMAKER_KEYS_SOCKET: sock } }, (error, stdout) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout }),
      );
    });
  const fp = `SHA256:${'A'.repeat(43)}`;

  test("the agent's lines, exactly (no blank line added), and nothing from the compat lookup", async () => {
    status = 200;
    body = 'ssh-ed25519 AAAA1\nssh-ed25519 AAAA2\n';
    expect(await run(socket, ['alice', fp])).toEqual({ code: 0, stdout: body });
    body = '';
    expect(await run(socket, ['alice'])).toEqual({ code: 0, stdout: '' });
  });

  test('421 (an /etc/passwd account): the compat lookup answers, with both arguments', async () => {
    status = 421;
    body = '';
    expect(await run(socket, ['legacy', fp])).toEqual({ code: 0, stdout: `compat lookup: legacy ${fp}\n` });
    expect(await run(socket, ['legacy'])).toEqual({ code: 0, stdout: 'compat lookup: legacy\n' });
  });

  test('no agent running (exit 7): the compat lookup answers', async () => {
    expect(await run(path.join(tmp, 'absent.sock'), ['legacy'])).toEqual({
      code: 0,
      stdout: 'compat lookup: legacy\n',
    });
  });

  test('a refusal or doubt never falls back: 404 and 503 print nothing, exit 22', async () => {
    for (const s of [404, 503, 400]) {
      status = s;
      body = 'ssh-ed25519 AAAA-not-to-be-printed\n';
      expect(await run(socket, ['alice'])).toEqual({ code: 22, stdout: '' });
    }
  });
});
