import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { AccessRefusedError, AwsError, createIamClient, type SshKeySummary, type SshPublicKey } from '@keymaker/core';
import { parseSshPublicKey as parseSshPublicKeyForTest } from '../../core/src/ssh-key';
import { AnswerCache, KeyBodyCache, LruMap, type Clock } from '../src/agent/keys-cache';
import {
  IamKeysSource,
  KeysServer,
  KeysService,
  RefusedError,
  parseKeysRequest,
  type KeysEvent,
  type KeysSource,
} from '../src/agent/keys-server';

// ---------------------------------------------------------------------------------------------
// Helpers

class FakeClock implements Clock {
  t = 1000;
  now(): number {
    return this.t;
  }
}

function ed25519Body(): string {
  const { publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')} someone@laptop`;
}

function parsed(body: string): SshPublicKey {
  const result = parseSshPublicKeyForTest(body);
  if (!result.ok) throw new Error(result.reason);
  return result.key;
}

interface FakeUser {
  keys: { keyId: string; status: 'Active' | 'Inactive'; body: string }[];
  inGroup?: boolean;
}

/** A KeysSource over a table, counting calls; `hang` makes every call wait for its signal. */
class FakeSource implements KeysSource {
  calls = { list: 0, group: 0, get: 0 };
  hang = false;
  fail?: Error;
  aborted = 0;
  constructor(public users: Record<string, FakeUser>) {}

  iamUserNameFor(linuxName: string): string {
    return linuxName;
  }

  private async maybeHang(signal: AbortSignal): Promise<void> {
    if (this.fail) throw this.fail;
    if (!this.hang) return;
    await new Promise<void>((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        this.aborted++;
        reject(new Error('aborted'));
      });
    });
  }

  async listKeys(iamUserName: string, signal: AbortSignal): Promise<SshKeySummary[]> {
    this.calls.list++;
    await this.maybeHang(signal);
    const user = this.users[iamUserName];
    if (!user) throw new AwsError('NO_SUCH_USER', `no such IAM user: ${iamUserName}`);
    return user.keys.map(({ keyId, status }) => ({ keyId, status }));
  }

  async checkRequiredGroup(iamUserName: string, signal: AbortSignal): Promise<void> {
    this.calls.group++;
    await this.maybeHang(signal);
    if (this.users[iamUserName]?.inGroup === false) throw new RefusedError('NOT_IN_REQUIRED_GROUP', 'not in group');
  }

  async getKey(
    iamUserName: string,
    keyId: string,
    signal: AbortSignal,
  ): Promise<{ key?: SshPublicKey; reason?: string }> {
    this.calls.get++;
    await this.maybeHang(signal);
    const key = this.users[iamUserName]?.keys.find((k) => k.keyId === keyId);
    if (!key) return { reason: 'key no longer exists' };
    const result = parseSshPublicKeyForTest(key.body);
    return result.ok ? { key: result.key } : { reason: result.reason };
  }

  total(): number {
    return this.calls.list + this.calls.group + this.calls.get;
  }
}

const A1 = ed25519Body();
const A2 = ed25519Body();
const A3 = ed25519Body();

function aliceSource(): FakeSource {
  return new FakeSource({
    alice: {
      keys: [
        { keyId: 'APKAALICE00000000001', status: 'Active', body: A1 },
        { keyId: 'APKAALICE00000000002', status: 'Active', body: A2 },
        { keyId: 'APKAALICE00000000003', status: 'Inactive', body: A3 },
      ],
    },
    bob: { keys: [{ keyId: 'APKABOB0000000000001', status: 'Active', body: ed25519Body() }], inGroup: false },
    mallory: { keys: [{ keyId: 'APKAMALLORY000000001', status: 'Active', body: 'command="sh" ' + A1 }] },
  });
}

// ---------------------------------------------------------------------------------------------

describe('keys caches (pure)', () => {
  test('LruMap evicts the least recently used entry', () => {
    const lru = new LruMap<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
    expect(lru.size).toBe(2);
    expect(() => new LruMap(0)).toThrow(RangeError);
  });

  test('KeyBodyCache is keyed by user and key ID (case-insensitive user), bounded', () => {
    const cache = new KeyBodyCache(2);
    const key = parsed(A1);
    cache.set('Alice', 'K1', key);
    expect(cache.get('alice', 'K1')).toBe(key);
    expect(cache.get('bob', 'K1')).toBeUndefined();
    cache.set('alice', 'K2', parsed(A2));
    cache.set('alice', 'K3', parsed(A3));
    expect(cache.size).toBe(2);
    expect(cache.get('alice', 'K1')).toBeUndefined();
  });

  test('AnswerCache expires after the TTL and is invalidated on demand', () => {
    const clock = new FakeClock();
    const cache = new AnswerCache(5000, clock);
    const state = { kind: 'allowed' as const, iamUserName: 'alice', activeKeyIds: ['K1'] };
    cache.set('alice', state);
    clock.t += 4999;
    expect(cache.get('alice')).toBe(state);
    clock.t += 1;
    expect(cache.get('alice')).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('alice', state);
    cache.invalidate('alice');
    expect(cache.get('alice')).toBeUndefined();
    const off = new AnswerCache(0, clock);
    off.set('alice', state);
    expect(off.get('alice')).toBeUndefined();
  });
});

describe('keys service (decisions)', () => {
  test('active, valid keys only; a second call within the TTL costs no source call', async () => {
    const source = aliceSource();
    const clock = new FakeClock();
    const service = new KeysService({ source, clock });
    const first = await service.answer('alice');
    expect(first).toMatchObject({ status: 200, lines: [parsed(A1).line, parsed(A2).line], cached: false, fetched: 2 });
    expect(source.calls).toEqual({ list: 1, group: 1, get: 2 });
    const second = await service.answer('alice');
    expect(second).toMatchObject({ status: 200, lines: [parsed(A1).line, parsed(A2).line], cached: true, fetched: 0 });
    expect(source.total()).toBe(4);
  });

  test('a key body is fetched once across logins; after the TTL a login is list + group only', async () => {
    const source = aliceSource();
    const clock = new FakeClock();
    const service = new KeysService({ source, clock, answerTtlMs: 5000 });
    await service.answer('alice');
    clock.t += 5000;
    const later = await service.answer('alice');
    expect(later).toMatchObject({ status: 200, cached: false, fetched: 0 });
    expect(source.calls).toEqual({ list: 2, group: 2, get: 2 });
  });

  test('a key made inactive in IAM disappears at the next login after the TTL (status is never cached)', async () => {
    const source = aliceSource();
    const clock = new FakeClock();
    const service = new KeysService({ source, clock });
    await service.answer('alice');
    source.users.alice!.keys[0]!.status = 'Inactive';
    clock.t += 5000;
    expect(await service.answer('alice')).toMatchObject({ status: 200, lines: [parsed(A2).line] });
  });

  test('with the fingerprint: only the offered key, and a cached body needs no GetSSHPublicKey', async () => {
    const source = aliceSource();
    const clock = new FakeClock();
    const service = new KeysService({ source, clock, answerTtlMs: 0 });
    const fp = parsed(A2).fingerprint;
    expect(await service.answer('alice', fp)).toMatchObject({ status: 200, lines: [parsed(A2).line], fetched: 2 });
    expect(await service.answer('alice', fp)).toMatchObject({ status: 200, lines: [parsed(A2).line], fetched: 0 });
    expect(source.calls).toEqual({ list: 2, group: 2, get: 2 });
    // The inactive key's fingerprint: no line.
    expect(await service.answer('alice', parsed(A3).fingerprint)).toMatchObject({ status: 200, lines: [] });
  });

  test('refusals are 404 and cached for the TTL; bad names never reach the source', async () => {
    const source = aliceSource();
    const service = new KeysService({ source, clock: new FakeClock(), reservedNames: ['ops'] });
    expect(await service.answer('bob')).toMatchObject({ status: 404, code: 'NOT_IN_REQUIRED_GROUP', cached: false });
    expect(await service.answer('bob')).toMatchObject({ status: 404, cached: true });
    expect(await service.answer('nobody-here')).toMatchObject({ status: 404, code: 'NO_SUCH_USER' });
    const before = source.total();
    for (const bad of [
      'root',
      'ops',
      'Alice',
      '-alice',
      'al ice',
      'a/b',
      '../etc',
      'alice\n',
      '',
      'x'.repeat(40),
      'al%69ce',
      'sshd',
    ]) {
      expect(await service.answer(bad)).toMatchObject({ status: 404, code: 'INVALID_USERNAME' });
    }
    expect(await service.answer('alice', 'MD5:aa:bb')).toMatchObject({ status: 404, code: 'INVALID_FINGERPRINT' });
    expect(source.total()).toBe(before);
  });

  test('an invalid key body is dropped (never printed), the valid ones stay', async () => {
    const events: KeysEvent[] = [];
    const source = aliceSource();
    const service = new KeysService({ source, clock: new FakeClock(), log: (event) => events.push(event) });
    expect(await service.answer('mallory')).toMatchObject({ status: 200, lines: [] });
    expect(events.some((event) => event.type === 'rejected-key')).toBe(true);
  });

  test('the admission gate refuses before any IAM call; its failure is doubt', async () => {
    const source = aliceSource();
    const refuse = new KeysService({
      source,
      clock: new FakeClock(),
      admit: () => {
        throw new AccessRefusedError('NOT_MANAGED', 'a local account');
      },
    });
    expect(await refuse.answer('alice')).toMatchObject({ status: 404, code: 'NOT_MANAGED' });
    const broken = new KeysService({
      source,
      clock: new FakeClock(),
      admit: () => {
        throw new Error('cannot read /etc/passwd');
      },
    });
    expect(await broken.answer('alice')).toMatchObject({ status: 503 });
    expect(source.total()).toBe(0);
  });

  test('doubt: a source failure or an implausible answer is 503 and drops the cached state', async () => {
    const source = aliceSource();
    const clock = new FakeClock();
    const service = new KeysService({ source, clock });
    expect(await service.answer('alice')).toMatchObject({ status: 200 });
    // A body fetch fails for a new key: 503, and the state is not reused.
    source.users.alice!.keys.push({ keyId: 'APKAALICE00000000004', status: 'Active', body: A3 });
    clock.t += 5000;
    source.fail = new AwsError('THROTTLED', 'Rate exceeded');
    expect(await service.answer('alice')).toMatchObject({ status: 503 });
    expect(service.answers.get('alice')).toBeUndefined();
    source.fail = undefined;
    source.users.alice!.keys.push({ keyId: 'bad id!', status: 'Active', body: A3 });
    expect(await service.answer('alice')).toMatchObject({ status: 503 });
    source.users.alice!.keys.pop();
    source.users.alice!.keys.push({ keyId: 'APKAX', status: 'Weird' as 'Active', body: A3 });
    expect(await service.answer('alice')).toMatchObject({ status: 503 });
  });

  test('deadline: a source that hangs gets 503 within the deadline and its work is aborted', async () => {
    const source = aliceSource();
    source.hang = true;
    const service = new KeysService({ source, deadlineMs: 150 });
    const started = Date.now();
    const answer = await service.answer('alice');
    const took = Date.now() - started;
    expect(answer).toMatchObject({ status: 503 });
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(10_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.aborted).toBe(2);
    expect(service.answers.get('alice')).toBeUndefined();
  });
});

describe('parseKeysRequest', () => {
  test('the one route, with an optional fingerprint', () => {
    expect(parseKeysRequest('/keys/alice')).toEqual({ user: 'alice' });
    expect(parseKeysRequest('/keys/alice?fingerprint=SHA256%3Aabc%2B')).toEqual({
      user: 'alice',
      fingerprint: 'SHA256:abc+',
    });
    expect(parseKeysRequest('/keys/al%69ce')).toEqual({ user: 'al%69ce' });
    for (const bad of [
      '/',
      '/keys/',
      '/keys/a/b',
      '/keys/alice?user=bob',
      '/keys/alice?fingerprint=a&fingerprint=b',
      '/keys/alice?fingerprint=a&x=1',
      '/KEYS/alice',
      `/keys/${'a'.repeat(600)}`,
    ]) {
      expect(parseKeysRequest(bad)).toHaveProperty('problem');
    }
  });
});

describe('keys server (HTTP on a Unix socket)', () => {
  let dir: string;
  let socketPath: string;
  let server: KeysServer | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-keys-'));
    fs.chmodSync(dir, 0o750);
    socketPath = path.join(dir, 'keys.sock');
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function get(target: string, method = 'GET'): Promise<{ status: number; body: string; type?: string }> {
    return new Promise((resolve, reject) => {
      const request = http.request({ socketPath, path: target, method }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode!, body, type: response.headers['content-type'] }),
        );
      });
      request.on('error', reject);
      request.end();
    });
  }

  async function start(
    source: KeysSource,
    extra: Partial<ConstructorParameters<typeof KeysServer>[0]> = {},
  ): Promise<KeysServer> {
    server = new KeysServer({ source, clock: new FakeClock(), ...extra });
    await server.listen({ path: socketPath });
    return server;
  }

  test('routes and status codes; refusals and doubt have no body', async () => {
    const source = aliceSource();
    await start(source, { deadlineMs: 200 });
    const ok = await get('/keys/alice');
    expect(ok).toEqual({
      status: 200,
      body: `${parsed(A1).line}\n${parsed(A2).line}\n`,
      type: 'text/plain; charset=utf-8',
    });
    expect(await get(`/keys/alice?fingerprint=${encodeURIComponent(parsed(A1).fingerprint)}`)).toMatchObject({
      status: 200,
      body: `${parsed(A1).line}\n`,
    });
    expect(await get('/keys/bob')).toMatchObject({ status: 404, body: '' });
    expect(await get('/keys/root')).toMatchObject({ status: 404, body: '' });
    expect(await get('/keys/..%2Fetc')).toMatchObject({ status: 404, body: '' });
    expect(await get('/keys/alice?fingerprint=nope')).toMatchObject({ status: 400, body: '' });
    expect(await get('/keys/alice?user=bob')).toMatchObject({ status: 400, body: '' });
    expect(await get('/other')).toMatchObject({ status: 404, body: '' });
    expect(await get('/keys/alice', 'POST')).toMatchObject({ status: 405, body: '' });
    expect(await get('/keys/mallory')).toMatchObject({ status: 200, body: '' });
    source.hang = true;
    const started = Date.now();
    expect(await get('/keys/carol')).toMatchObject({ status: 503, body: '' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('the socket is 0660 and a group/world-writable directory is refused', async () => {
    await start(aliceSource());
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o660);
    await server!.close();
    server = undefined;
    expect(fs.existsSync(socketPath)).toBe(false);
    fs.chmodSync(dir, 0o777);
    await expect(new KeysServer({ source: aliceSource() }).listen({ path: socketPath })).rejects.toThrow(
      /writable by group or others/,
    );
  });

  test('a live socket or a non-socket at the path is refused', async () => {
    await start(aliceSource());
    await expect(new KeysServer({ source: aliceSource() }).listen({ path: socketPath })).rejects.toThrow(
      /another service/,
    );
    await server!.close();
    server = undefined;
    fs.writeFileSync(socketPath, 'x');
    await expect(new KeysServer({ source: aliceSource() }).listen({ path: socketPath })).rejects.toThrow(
      /not a socket/,
    );
  });
});

describe('IamKeysSource', () => {
  test("core's IAM client keeps connections alive (one long-lived client is enough)", async () => {
    const iam = createIamClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const handler = iam.config.requestHandler as unknown as {
      configProvider: Promise<{ httpsAgent: { keepAlive: boolean } }>;
    };
    expect((await handler.configProvider).httpsAgent.keepAlive).toBe(true);
    iam.destroy();
  });

  test('every IAM call carries the request signal; the group check refuses a non-member', async () => {
    const seen: { name: string; signal?: AbortSignal }[] = [];
    const iam = {
      send: (command: { constructor: { name: string } }, options?: { abortSignal?: AbortSignal }) => {
        seen.push({ name: command.constructor.name, signal: options?.abortSignal });
        if (command.constructor.name === 'ListGroupsForUserCommand')
          return Promise.resolve({ Groups: [{ GroupName: 'other', GroupId: 'AGPA1' }] });
        return Promise.resolve({ SSHPublicKeys: [{ SSHPublicKeyId: 'APKA1', Status: 'Active' }] });
      },
    };
    const source = new IamKeysSource(
      iam as never,
      {
        linuxUserSuffix: '',
        linuxGroupPrefix: 'keymaker-',
        uidScheme: 'sha256',
        requireIamGroup: 'ssh-users',
      } as never,
    );
    const controller = new AbortController();
    expect(await source.listKeys('alice', controller.signal)).toEqual([
      { keyId: 'APKA1', status: 'Active', uploadDate: undefined },
    ]);
    await expect(source.checkRequiredGroup('alice', controller.signal)).rejects.toMatchObject({
      code: 'NOT_IN_REQUIRED_GROUP',
    });
    expect(seen.map((call) => call.signal)).toEqual([controller.signal, controller.signal]);
  });
});
