// Issue 13, point 8 for the lookup: sshd runs it once per offered key, so N wrong keys for one
// managed name cost N IAM lookups. A per-name store the lookup user writes may only ever REFUSE:
// the fingerprints IAM listed a few seconds ago (an unlisted key is refused without IAM) and a
// per-name bucket of live lookups. It never grants: keys are printed only from a live IAM answer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  GetSSHPublicKeyCommand,
  GetUserCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { lookupAuthorizedKeys, runLookup } from '../src/login/keys-lookup';
import { fileLookupGuard, LOOKUP_GUARD_POLICY } from '../src/login/lookup-guard';
import { createMemorySyslog } from '../src/system/syslog';
import { ED25519, FakeHost, newIam, resolutionFor } from './fakes';

const iam = newIam();
const iamMock = mockClient(iam);
const L = LOOKUP_GUARD_POLICY;

function seed(status: 'Active' | 'Inactive' = 'Active') {
  iamMock.on(GetUserCommand, { UserName: 'alice' }).resolves({
    User: {
      UserName: 'alice',
      UserId: 'AIDAEXAMPLEALICE0001',
      Arn: 'arn:aws:iam::1:user/alice',
      Path: '/',
      CreateDate: new Date(),
    },
  });
  iamMock.on(ListSSHPublicKeysCommand, { UserName: 'alice' }).resolves({
    SSHPublicKeys: [
      { UserName: 'alice', SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAA1', Status: status, UploadDate: new Date() },
    ],
  });
  iamMock.on(GetSSHPublicKeyCommand).resolves({
    SSHPublicKey: {
      UserName: 'alice',
      SSHPublicKeyId: 'APKAAAAAAAAAAAAAAAA1',
      Status: status,
      SSHPublicKeyBody: ED25519,
      Fingerprint: 'x',
    },
  });
  iamMock.on(ListGroupsForUserCommand).resolves({ Groups: [] });
}

let dir: string;
let now = 1_000_000;
beforeEach(() => {
  iamMock.reset();
  seed();
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-lookup-guard.')), 'lookup');
  fs.mkdirSync(dir, { mode: 0o700 });
  now = 1_000_000;
});
afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

const deps = (guard = fileLookupGuard({ dir, now: () => now })) => ({
  accounts: new FakeHost(),
  resolve: async () => resolutionFor(iam),
  guard,
});
const wrong = (i: number) => `SHA256:${String(i).padStart(43, 'w')}`;

async function aliceFingerprint(): Promise<string> {
  const d = await lookupAuthorizedKeys(
    { user: 'alice' },
    { accounts: new FakeHost(), resolve: async () => resolutionFor(iam) },
  );
  iamMock.resetHistory();
  return d.fingerprints[0]!;
}

test('50 wrong keys offered for one name cost one IAM lookup, not 50', async () => {
  const d = deps();
  const results: string[] = [];
  for (let i = 0; i < 50; i++) {
    results.push(
      await lookupAuthorizedKeys({ user: 'alice', fingerprint: wrong(i) }, d).then(
        (r) => `keys:${r.lines.length}`,
        (e: { code: string; details?: { cached?: boolean } }) => (e.details?.cached ? `cached:${e.code}` : e.code),
      ),
    );
  }
  expect(results[0]).toBe('keys:1');
  expect(results.slice(1)).toEqual(Array(49).fill('cached:NO_SUCH_KEY'));
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(1);
  // After the short TTL the list is asked again.
  now += L.listedTtlMs;
  await lookupAuthorizedKeys({ user: 'alice', fingerprint: wrong(99) }, d);
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(2);
});

test('a listed key always gets a live IAM answer; keys are printed only from it', async () => {
  const fp = await aliceFingerprint();
  const d = deps();
  await lookupAuthorizedKeys({ user: 'alice', fingerprint: wrong(1) }, d);
  const live = await lookupAuthorizedKeys({ user: 'alice', fingerprint: fp }, d);
  expect(live.lines).toHaveLength(1);
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(2);
});

test('a forged store that lists a fingerprint grants nothing: IAM decides (key now inactive: nothing printed)', async () => {
  const fp = await aliceFingerprint();
  fs.writeFileSync(
    path.join(dir, 'alice.json'),
    JSON.stringify({ version: 1, listed: [fp], listedAtMs: now, tokens: 1000, refilledAtMs: now }),
    { mode: 0o600 },
  );
  iamMock.reset();
  seed('Inactive');
  const r = await lookupAuthorizedKeys({ user: 'alice', fingerprint: fp }, deps());
  expect(r.lines).toEqual([]);
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(1);
});

test('a name refused by IAM is refused again from the store within the TTL', async () => {
  const d = deps();
  const missing = Object.assign(new Error('no such user'), {
    name: 'NoSuchEntity',
    $metadata: { httpStatusCode: 404 },
  });
  iamMock.on(ListSSHPublicKeysCommand, { UserName: 'ghost' }).rejects(missing);
  iamMock.on(GetUserCommand, { UserName: 'ghost' }).rejects(missing);
  await expect(lookupAuthorizedKeys({ user: 'ghost', fingerprint: wrong(1) }, d)).rejects.toMatchObject({
    code: 'NO_SUCH_USER',
  });
  const calls = iamMock.calls().length;
  await expect(lookupAuthorizedKeys({ user: 'ghost', fingerprint: wrong(2) }, d)).rejects.toMatchObject({
    code: 'NO_SUCH_KEY',
    details: { cached: true },
  });
  expect(iamMock.calls()).toHaveLength(calls);
});

test(`live lookups of one name are limited (${L.burst}, then one every ${L.refillIntervalMs / 1000} s), without an IAM call when refused`, async () => {
  const fp = await aliceFingerprint();
  const d = deps();
  const codes: string[] = [];
  for (let i = 0; i < L.burst + 2; i++)
    codes.push(
      await lookupAuthorizedKeys({ user: 'alice', fingerprint: fp }, d).then(
        () => 'ok',
        (e: { code: string }) => e.code,
      ),
    );
  expect(codes).toEqual([...Array<string>(L.burst).fill('ok'), 'THROTTLED', 'THROTTLED']);
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(L.burst);
  now += L.refillIntervalMs;
  await expect(lookupAuthorizedKeys({ user: 'alice', fingerprint: fp }, d)).resolves.toMatchObject({
    iamUserName: 'alice',
  });
  // Another name is not affected.
  expect(fs.readdirSync(dir).sort()).toEqual(['alice.json']);
});

test("a store directory that is not the lookup user's 0700 directory is not used (live lookups, logged)", async () => {
  fs.chmodSync(dir, 0o755);
  const syslog = createMemorySyslog();
  const d = deps(fileLookupGuard({ dir, now: () => now, syslog }));
  for (let i = 0; i < 3; i++) await lookupAuthorizedKeys({ user: 'alice', fingerprint: wrong(i) }, d);
  expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(3);
  expect(fs.readdirSync(dir)).toEqual([]);
  expect(syslog.lines.map((l) => l.message).join('\n')).toMatch(/lookup cache .* not used/);
});

test('runLookup logs a cached refusal with its reason', async () => {
  const syslog = createMemorySyslog();
  const out: string[] = [];
  const d = deps();
  await runLookup({ user: 'alice', fingerprint: wrong(1) }, { write: (t) => out.push(t) }, { deps: d, syslog });
  const code = await runLookup(
    { user: 'alice', fingerprint: wrong(2) },
    { write: (t) => out.push(t) },
    { deps: d, syslog },
  );
  expect(code).not.toBe(0);
  expect(out).toHaveLength(1);
  expect(syslog.lines.map((l) => l.message).join('\n')).toMatch(
    /lookup user="alice" fingerprint=SHA256:w+2 decision=refused reason=NO_SUCH_KEY cached=yes/,
  );
});
