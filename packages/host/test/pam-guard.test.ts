// The PAM hook's abuse protection: token bucket, negative cache, the root-only state file, and
// how account creation uses them (no IAM call when refused by either).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetUserCommand, ListGroupsForUserCommand, ListSSHPublicKeysCommand } from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { createAccountForLogin } from '../src/accounts';
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
  type GuardState,
} from '../src/pam-guard';
import { FakeHost, newIam, resolutionFor } from './fakes';

const P = PAM_GUARD_POLICY;

describe('token bucket', () => {
  test(`a burst of ${P.burst}, then one lookup every ${P.refillIntervalMs / 1000} s`, () => {
    let state = freshGuardState(0);
    const kinds: string[] = [];
    for (let i = 0; i < P.burst + 5; i++) {
      const r = admit(state, `user${i}`, 0);
      state = r.state;
      kinds.push(r.admission.kind);
    }
    expect(kinds.filter((k) => k === 'admit')).toHaveLength(P.burst);
    expect(kinds.slice(P.burst)).toEqual(Array(5).fill('rate-limited'));
    expect(admit(state, 'x', P.refillIntervalMs - 1).admission).toEqual({ kind: 'rate-limited', retryInMs: 1 });
    expect(admit(state, 'x', P.refillIntervalMs).admission.kind).toBe('admit');
  });

  test('1,000 random names within one minute are admitted at most burst + 60 s / refill times', () => {
    let state = freshGuardState(0);
    let admitted = 0;
    for (let i = 0; i < 1000; i++) {
      const r = admit(state, `r${Math.random().toString(36).slice(2, 12)}`, i * 60);
      state = r.state;
      if (r.admission.kind === 'admit') admitted += 1;
    }
    expect(admitted).toBeLessThanOrEqual(P.burst + 60_000 / P.refillIntervalMs);
    expect(admitted).toBeGreaterThanOrEqual(P.burst + 59_000 / P.refillIntervalMs - 1);
  });

  test('never more than the burst, however long the quiet spell; a clock that goes back adds nothing', () => {
    const idle = admit(freshGuardState(0), 'a', 10 * 24 * 3600_000).state;
    expect(idle.tokens).toBe(P.burst - 1);
    let state: GuardState = { version: 1, tokens: 0, refilledAtMs: 1_000_000, refused: {} };
    state = parseGuardState(serializeGuardState(state), 500_000); // clock moved back
    expect(admit(state, 'a', 500_000).admission.kind).toBe('rate-limited');
  });
});

describe('negative cache', () => {
  test('a refused name is refused without a token for 10 minutes, then asked again', () => {
    let state = rememberRefusal(freshGuardState(0), 'mallory', 'NO_SUCH_USER', 0);
    const again = admit(state, 'mallory', 60_000);
    expect(again.admission).toEqual({ kind: 'remembered', code: 'NO_SUCH_USER', remainingMs: P.negativeTtlMs - 60_000 });
    expect(again.state.tokens).toBe(P.burst);
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
    ['wrong version', JSON.stringify({ version: 2, tokens: 20, refilledAtMs: 0, refused: {} })],
    ['negative tokens', JSON.stringify({ version: 1, tokens: -1, refilledAtMs: 0, refused: {} })],
    ['tokens as a string', JSON.stringify({ version: 1, tokens: '1e9', refilledAtMs: 0, refused: {} })],
    ['a bad name', JSON.stringify({ version: 1, tokens: 20, refilledAtMs: 0, refused: { 'a b': { code: 'NO_SUCH_USER', untilMs: 1 } } })],
    ['an unknown refusal code', JSON.stringify({ version: 1, tokens: 20, refilledAtMs: 0, refused: { a: { code: 'OK', untilMs: 1 } } })],
    ['an array', '[]'],
  ])('corrupt (%s): an empty bucket, never extra permission', (_what, text) => {
    const state = parseGuardState(text, 1000);
    expect(state).toEqual({ version: 1, tokens: 0, refilledAtMs: 1000, refused: {} });
    expect(admit(state, 'a', 1000).admission.kind).toBe('rate-limited');
  });

  test('tokens above the burst are capped; entries beyond the TTL are clamped', () => {
    const text = JSON.stringify({ version: 1, tokens: 1e9, refilledAtMs: 0, refused: { eve: { code: 'NO_SUCH_USER', untilMs: 1e15 } } });
    const state = parseGuardState(text, 0);
    expect(state.tokens).toBe(P.burst);
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
    for (let i = 0; i < P.burst; i++) await (i % 2 ? a : b).admit(`u${i}`);
    await expect(a.admit('one-more')).rejects.toMatchObject({ code: 'THROTTLED', details: { rateLimited: true } });
    await expect(b.admit('one-more')).rejects.toMatchObject({ code: 'THROTTLED' });
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'pam-state.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual(['pam-state.json']);
  });

  test('many concurrent updates lose none (lock + rename)', async () => {
    const stores = Array.from({ length: 8 }, () => loginGuard(fileGuardStore({ dir })));
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => stores[i % 8]!.admit(`c${i}`)));
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
    const noSuchEntity = Object.assign(new Error('The user with name mallory cannot be found.'), { name: 'NoSuchEntity', $metadata: { httpStatusCode: 404 } });
    iamMock.on(GetUserCommand).rejects(noSuchEntity);
    iamMock.on(ListSSHPublicKeysCommand).rejects(noSuchEntity);
    iamMock.on(ListGroupsForUserCommand).rejects(noSuchEntity);
  });

  function create(user: string, guard: ReturnType<typeof loginGuard>, host = new FakeHost()) {
    return createAccountForLogin(user, { accounts: host, admin: host, resolve: async () => resolutionFor(iam), lock: (body) => body(), guard }, { allowedExistingGroups: [] });
  }

  test('an unknown name costs IAM calls once; the retry is refused from memory with the same exit code', async () => {
    const store = memoryGuardStore();
    const guard = loginGuard(store);
    await expect(create('mallory', guard)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    const calls = iamMock.calls().length;
    expect(calls).toBeGreaterThan(0);
    await expect(create('mallory', guard)).rejects.toMatchObject({ code: 'NO_SUCH_USER', details: { remembered: true } });
    expect(iamMock.calls()).toHaveLength(calls);
  });

  test('invalid names and existing accounts cost no IAM call and no token', async () => {
    const store = memoryGuardStore();
    const guard = loginGuard(store);
    for (const bad of ['', 'Root', '../etc', 'a b', '-rf', 'x'.repeat(40), 'é', 'a\nb']) {
      await expect(create(bad, guard)).rejects.toMatchObject({ code: 'INVALID_USERNAME' });
    }
    await expect(create('ubuntu', guard, new FakeHost({ users: [['ubuntu', 1000]] }))).resolves.toMatchObject({ kind: 'exists' });
    expect(iamMock.calls()).toHaveLength(0);
    expect(store.state).toBeUndefined();
  });

  test('with the bucket empty, no IAM call is made and the refusal says why', async () => {
    let now = 0;
    const store = memoryGuardStore({ now: () => now });
    const guard = loginGuard(store);
    for (let i = 0; i < P.burst; i++) await expect(create(`n${i}`, guard)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    const calls = iamMock.calls().length;
    await expect(create('another', guard)).rejects.toThrow(/refused without an IAM call, try again in 3 s/);
    expect(iamMock.calls()).toHaveLength(calls);
    now += P.refillIntervalMs;
    await expect(create('another', guard)).rejects.toMatchObject({ code: 'NO_SUCH_USER' });
    expect(iamMock.calls().length).toBeGreaterThan(calls);
  });
});
