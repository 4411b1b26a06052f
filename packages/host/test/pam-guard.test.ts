// The PAM hook's abuse protection: token bucket, negative cache, the root-only state file, and
// how account creation uses them (no IAM call when refused by either).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetUserCommand, ListGroupsForUserCommand, ListSSHPublicKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { createAccountForLogin } from '../src/login/create-account';
import {
  admit,
  fileGuardStore,
  freshGuardState,
  loginGuard,
  memoryGuardStore,
  PAM_GUARD_POLICY,
  parseGuardState,
  rememberRefusal,
  serializeGuardState,
  sourceKey,
  type GuardState,
} from '../src/login/pam-guard';
import { FakeHost, newIam, resolutionFor } from './fakes';

const P = PAM_GUARD_POLICY;

describe('token bucket', () => {
  test(`a burst of ${P.burst}, then one lookup every ${P.refillIntervalMs / 1000} s`, () => {
    let state = freshGuardState(0);
    const kinds: string[] = [];
    for (let i = 0; i < P.burst + 5; i++) {
      const r = admit(state, `user${i}`, 0, P, `203.0.113.${i}`);
      state = r.state;
      kinds.push(r.admission.kind);
    }
    expect(kinds.filter((k) => k === 'admit')).toHaveLength(P.burst);
    expect(kinds.slice(P.burst)).toEqual(Array(5).fill('rate-limited'));
    expect(admit(state, 'x', P.refillIntervalMs - 1, P, '192.0.2.1').admission).toEqual({
      kind: 'rate-limited',
      scope: 'global',
      retryInMs: 1,
    });
    expect(admit(state, 'x', P.refillIntervalMs, P, '192.0.2.1').admission.kind).toBe('admit');
  });

  test('1,000 random names within one minute are admitted at most burst + 60 s / refill times', () => {
    let state = freshGuardState(0);
    let admitted = 0;
    for (let i = 0; i < 1000; i++) {
      const r = admit(state, `r${Math.random().toString(36).slice(2, 12)}`, i * 60, P, `198.51.${i % 250}.${i % 7}`);
      state = r.state;
      if (r.admission.kind === 'admit') admitted += 1;
    }
    expect(admitted).toBeLessThanOrEqual(P.burst + 60_000 / P.refillIntervalMs);
    expect(admitted).toBeGreaterThanOrEqual(P.burst + 59_000 / P.refillIntervalMs - 1);
  });

  test('never more than the burst, however long the quiet spell; a clock that goes back adds nothing', () => {
    const idle = admit(freshGuardState(0), 'a', 10 * 24 * 3600_000).state;
    expect(idle.global.tokens).toBe(P.burst - 1);
    let state: GuardState = {
      version: 2,
      global: { tokens: 0, refilledAtMs: 1_000_000 },
      sources: {},
      names: {},
      refused: {},
    };
    state = parseGuardState(serializeGuardState(state), 500_000); // clock moved back
    expect(admit(state, 'a', 500_000).admission.kind).toBe('rate-limited');
  });
});

describe('negative cache', () => {
  test('a refused name is refused without a token for 10 minutes, then asked again', () => {
    let state = rememberRefusal(freshGuardState(0), 'mallory', 'NO_SUCH_USER', 0);
    const again = admit(state, 'mallory', 60_000);
    expect(again.admission).toEqual({
      kind: 'remembered',
      code: 'NO_SUCH_USER',
      remainingMs: P.negativeTtlMs - 60_000,
    });
    expect(again.state.global.tokens).toBe(P.burst);
    state = again.state;
    expect(admit(state, 'mallory', P.negativeTtlMs).admission.kind).toBe('admit');
  });

  test('only IAM refusals are remembered, not throttling or network errors', () => {
    const state = freshGuardState(0);
    for (const code of ['THROTTLED', 'NETWORK', 'DEADLINE_EXCEEDED', 'UID_CONFLICT'] as const) {
      expect(rememberRefusal(state, 'bob', code, 0).refused).toEqual({});
    }
    for (const code of ['NO_SUCH_USER', 'NO_SUCH_KEY', 'NOT_IN_REQUIRED_GROUP'] as const) {
      expect(rememberRefusal(state, 'bob', code, 0).refused.bob?.code).toBe(code);
    }
  });

  test('bounded: the oldest entries go first', () => {
    const policy = { ...P, maxRemembered: 3 };
    let state = freshGuardState(0, policy);
    for (let i = 0; i < 5; i++) state = rememberRefusal(state, `n${i}`, 'NO_SUCH_USER', i, policy);
    expect(Object.keys(state.refused).sort()).toEqual(['n2', 'n3', 'n4']);
  });
});

describe('state file parsing', () => {
  test('no file: a full bucket', () => {
    expect(parseGuardState(undefined, 5)).toEqual(freshGuardState(5));
  });

  test.each([
    ['not JSON', '{'],
    ['version 1 (one host-wide bucket)', JSON.stringify({ version: 1, tokens: 20, refilledAtMs: 0, refused: {} })],
    [
      'wrong version',
      JSON.stringify({ version: 3, global: { tokens: 20, refilledAtMs: 0 }, sources: {}, names: {}, refused: {} }),
    ],
    [
      'a forged source key',
      JSON.stringify({
        version: 2,
        global: { tokens: 20, refilledAtMs: 0 },
        sources: { 'a b': { tokens: 5, refilledAtMs: 0 } },
        names: {},
        refused: {},
      }),
    ],
    [
      'negative source tokens',
      JSON.stringify({
        version: 2,
        global: { tokens: 20, refilledAtMs: 0 },
        sources: { '192.0.2.1': { tokens: -5, refilledAtMs: 0 } },
        names: {},
        refused: {},
      }),
    ],
    [
      'negative tokens',
      JSON.stringify({ version: 2, global: { tokens: -1, refilledAtMs: 0 }, sources: {}, names: {}, refused: {} }),
    ],
    [
      'tokens as a string',
      JSON.stringify({ version: 2, global: { tokens: '1e9', refilledAtMs: 0 }, sources: {}, names: {}, refused: {} }),
    ],
    [
      'a bad name',
      JSON.stringify({
        version: 2,
        global: { tokens: 20, refilledAtMs: 0 },
        sources: {},
        names: {},
        refused: { 'a b': { code: 'NO_SUCH_USER', untilMs: 1 } },
      }),
    ],
    [
      'an unknown refusal code',
      JSON.stringify({
        version: 2,
        global: { tokens: 20, refilledAtMs: 0 },
        sources: {},
        names: {},
        refused: { a: { code: 'OK', untilMs: 1 } },
      }),
    ],
    ['an array', '[]'],
  ])('corrupt (%s): an empty bucket, never extra permission', (_what, text) => {
    const state = parseGuardState(text, 1000);
    expect(state).toEqual({
      version: 2,
      global: { tokens: 0, refilledAtMs: 1000 },
      sources: {},
      names: {},
      refused: {},
    });
    expect(admit(state, 'a', 1000).admission.kind).toBe('rate-limited');
  });

  test('tokens above the burst are capped; entries beyond the TTL are clamped', () => {
    const text = JSON.stringify({
      version: 2,
      global: { tokens: 1e9, refilledAtMs: 0 },
      sources: { '192.0.2.1': { tokens: 1e9, refilledAtMs: 0 } },
      names: { eve: { tokens: 1e9, refilledAtMs: 0 } },
      refused: { eve: { code: 'NO_SUCH_USER', untilMs: 1e15 } },
    });
    const state = parseGuardState(text, 0);
    expect(state.global.tokens).toBe(P.burst);
    expect(state.sources['192.0.2.1']!.tokens).toBe(P.sourceBurst);
    expect(state.names.eve!.tokens).toBe(P.nameBurst);
    expect(state.refused.eve!.untilMs).toBe(P.negativeTtlMs);
  });
});

describe('the root-only state file', () => {
  let dir: string;
  beforeEach(() => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-guard.')), 'state');
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  test('created 0700/0600, shared across stores (processes), replaced atomically', async () => {
    const a = loginGuard(fileGuardStore({ dir }));
    const b = loginGuard(fileGuardStore({ dir }));
    for (let i = 0; i < P.burst; i++) await (i % 2 ? a : b).admit(`u${i}`, `203.0.113.${i}`);
    await expect(a.admit('one-more', '192.0.2.1')).rejects.toMatchObject({
      code: 'THROTTLED',
      details: { rateLimited: true },
    });
    await expect(b.admit('one-more', '192.0.2.2')).rejects.toMatchObject({ code: 'THROTTLED' });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'pam-state.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual(['pam-state.json']);
  });

  test('many concurrent updates lose none (lock + rename)', async () => {
    const stores = Array.from({ length: 8 }, () => loginGuard(fileGuardStore({ dir })));
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => stores[i % 8]!.admit(`c${i}`, `203.0.113.${i}`)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(P.burst);
  });

  test('a corrupt, foreign-mode or symlinked state file counts as an empty bucket', async () => {
    const guard = loginGuard(fileGuardStore({ dir }));
    await guard.admit('first'); // creates the directory and file
    const file = path.join(dir, 'pam-state.json');
    fs.writeFileSync(file, 'garbage');
    await expect(guard.admit('a')).rejects.toMatchObject({ code: 'THROTTLED' });

    fs.writeFileSync(file, serializeGuardState(freshGuardState(Date.now())));
    fs.chmodSync(file, 0o644); // not ours as written: do not trust its tokens
    await expect(guard.admit('b')).rejects.toMatchObject({ code: 'THROTTLED' });

    const elsewhere = path.join(path.dirname(dir), 'full-bucket.json');
    fs.writeFileSync(elsewhere, serializeGuardState(freshGuardState(Date.now())), { mode: 0o600 });
    fs.rmSync(file);
    fs.symlinkSync(elsewhere, file);
    await expect(guard.admit('c')).rejects.toMatchObject({ code: 'THROTTLED' });
  });

  test('a state directory that is not root-only is refused (fail closed), not used', async () => {
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    await expect(loginGuard(fileGuardStore({ dir })).admit('a')).rejects.toMatchObject({ code: 'UNSAFE_PATH' });
  });
});

describe('account creation behind the guard', () => {
  const iam = newIam();
  const iamMock = mockClient(iam);
  beforeEach(() => {
    iamMock.reset();
    const noSuchEntity = Object.assign(new Error('The user with name mallory cannot be found.'), {
      name: 'NoSuchEntity',
      $metadata: { httpStatusCode: 404 },
    });
    iamMock.on(GetUserCommand).rejects(noSuchEntity);
    iamMock.on(ListSSHPublicKeysCommand).rejects(noSuchEntity);
    iamMock.on(ListGroupsForUserCommand).rejects(noSuchEntity);
  });

  function create(user: string, guard: ReturnType<typeof loginGuard>, host = new FakeHost(), source?: string) {
    return createAccountForLogin(
      user,
      {
        accounts: host,
        admin: host,
        resolve: async () => resolutionFor(iam),
        lock: (body) => body(),
        guard,
        managed: host,
      },
      { allowedExistingGroups: [], source },
    );
  }

  test('an unknown name costs IAM calls once; the retry is refused from memory with the same exit code', async () => {
    const store = memoryGuardStore();
    const guard = loginGuard(store);
    await expect(create('mallory', guard)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    const calls = iamMock.calls().length;
    expect(calls).toBeGreaterThan(0);
    await expect(create('mallory', guard)).rejects.toMatchObject({
      code: 'NO_SUCH_USER',
      details: { remembered: true },
    });
    expect(iamMock.calls()).toHaveLength(calls);
  });

  test('invalid names and existing accounts cost no IAM call and no token', async () => {
    const store = memoryGuardStore();
    const guard = loginGuard(store);
    for (const bad of ['', 'Root', '../etc', 'a b', '-rf', 'x'.repeat(40), 'é', 'a\nb']) {
      await expect(create(bad, guard)).rejects.toMatchObject({ code: 'INVALID_USERNAME' });
    }
    await expect(create('ubuntu', guard, new FakeHost({ users: [['ubuntu', 1000]] }))).resolves.toMatchObject({
      kind: 'exists',
    });
    expect(iamMock.calls()).toHaveLength(0);
    expect(store.state).toBeUndefined();
  });

  test('with the bucket empty, no IAM call is made and the refusal says why', async () => {
    let now = 0;
    const store = memoryGuardStore({ now: () => now });
    const guard = loginGuard(store);
    for (let i = 0; i < P.burst; i++)
      await expect(create(`n${i}`, guard, undefined, `203.0.113.${i}`)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    const calls = iamMock.calls().length;
    await expect(create('another', guard, undefined, '192.0.2.1')).rejects.toThrow(
      /on this host .*refused without an IAM call, try again in 3 s/,
    );
    expect(iamMock.calls()).toHaveLength(calls);
    now += P.refillIntervalMs;
    await expect(create('another', guard, undefined, '192.0.2.1')).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    expect(iamMock.calls().length).toBeGreaterThan(calls);
  });
});

describe('one client cannot lock out others (issue 13, point 8)', () => {
  test('a flood of random names from one source leaves another source its first lookups', () => {
    let state = freshGuardState(0);
    let floodAdmitted = 0;
    // 1,000 names from one address over 60 s.
    for (let i = 0; i < 1000; i++) {
      const r = admit(state, `r${i}x`, i * 60, P, '198.51.100.7');
      state = r.state;
      if (r.admission.kind === 'admit') floodAdmitted += 1;
    }
    expect(floodAdmitted).toBeLessThanOrEqual(P.sourceBurst + Math.ceil(60_000 / P.sourceRefillIntervalMs));
    // A real user's first login from elsewhere is admitted at once.
    const real = admit(state, 'alice', 60_000, P, '192.0.2.10');
    expect(real.admission.kind).toBe('admit');
  });

  test('one source alone cannot empty the global bucket: its share is smaller', () => {
    expect(P.sourceBurst).toBeLessThan(P.burst);
    expect(P.sourceRefillIntervalMs).toBeGreaterThan(P.refillIntervalMs);
    let state = freshGuardState(0);
    for (let i = 0; i < 50; i++) state = admit(state, `f${i}`, 0, P, '198.51.100.7').state;
    expect(state.global.tokens).toBe(P.burst - P.sourceBurst);
  });

  test('many sources together are still held to the global bound (IAM is shared)', () => {
    let state = freshGuardState(0);
    let admitted = 0;
    for (let i = 0; i < 200; i++) {
      const r = admit(state, `g${i}`, 0, P, `203.0.113.${i}`);
      state = r.state;
      if (r.admission.kind === 'admit') admitted += 1;
    }
    expect(admitted).toBe(P.burst);
    expect(admit(state, 'late', 0, P, '192.0.2.99').admission).toMatchObject({ kind: 'rate-limited', scope: 'global' });
  });

  test('one name asked again and again (not a remembered refusal) is limited on its own', () => {
    let state = freshGuardState(0);
    const kinds: string[] = [];
    for (let i = 0; i < P.nameBurst + 2; i++) {
      const r = admit(state, 'bob', 0, P, `203.0.113.${i}`);
      state = r.state;
      kinds.push(r.admission.kind === 'rate-limited' ? `limited:${r.admission.scope}` : r.admission.kind);
    }
    expect(kinds).toEqual([...Array<string>(P.nameBurst).fill('admit'), 'limited:name', 'limited:name']);
    expect(admit(state, 'carol', 0, P, '203.0.113.200').admission.kind).toBe('admit');
  });

  test('a refusal by one limit takes no token from the others', () => {
    let state = freshGuardState(0);
    for (let i = 0; i < P.sourceBurst; i++) state = admit(state, `s${i}`, 0, P, '198.51.100.7').state;
    const before = state.global.tokens;
    const r = admit(state, 'zed', 0, P, '198.51.100.7');
    expect(r.admission).toMatchObject({ kind: 'rate-limited', scope: 'source' });
    expect(r.state.global.tokens).toBe(before);
    expect(r.state.names.zed).toBeUndefined();
  });

  test('the state stays bounded: at most maxSources sources and maxNames names, oldest evicted', () => {
    const policy = { ...P, maxSources: 10, maxNames: 10, burst: 1e6 };
    let state = freshGuardState(0, policy);
    for (let i = 0; i < 100; i++) state = admit(state, `n${i}`, i, policy, `10.0.0.${i}`).state;
    expect(Object.keys(state.sources)).toHaveLength(10);
    expect(Object.keys(state.names)).toHaveLength(10);
    expect(Object.keys(state.sources).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `10.0.0.${90 + i}`).sort());
    const text = serializeGuardState(state);
    expect(parseGuardState(text, 100, policy)).toEqual(state);
  });

  test('a bucket that has refilled is forgotten (the file holds only recent clients)', () => {
    let state = admit(freshGuardState(0), 'a', 0, P, '198.51.100.7').state;
    expect(Object.keys(state.sources)).toEqual(['198.51.100.7']);
    state = admit(state, 'b', 10 * 60_000, P, '192.0.2.1').state;
    expect(Object.keys(state.sources)).toEqual(['192.0.2.1']);
  });

  test('odd or missing PAM_RHOST values share one bucket and cannot forge JSON keys', () => {
    expect(sourceKey(undefined)).toBe('-');
    expect(sourceKey('')).toBe('-');
    expect(sourceKey('192.0.2.1')).toBe('192.0.2.1');
    expect(sourceKey('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    // An IPv6 client holds a /64: all its addresses are one source.
    expect(sourceKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceKey('a b\n"c"')).toBe('?');
    expect(sourceKey('x'.repeat(300))).toBe('?');
  });

  test('the hook passes the source through loginGuard: a flooding source is refused, another is not', async () => {
    const guard = loginGuard(memoryGuardStore({ now: () => 0 }));
    for (let i = 0; i < P.sourceBurst; i++) await guard.admit(`m${i}`, '198.51.100.7');
    await expect(guard.admit('m99', '198.51.100.7')).rejects.toMatchObject({
      code: 'THROTTLED',
      details: { rateLimited: true, scope: 'source' },
    });
    await expect(guard.admit('alice', '192.0.2.10')).resolves.toBeUndefined();
  });
});
