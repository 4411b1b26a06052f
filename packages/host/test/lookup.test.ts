import { expect } from '@jest/globals';
import {
  GetGroupCommand,
  GetSSHPublicKeyCommand,
  GetUserCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { EXIT_CODES, parseSshPublicKey, unixIdFor, type RoleConfig } from '@keymaker/core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lookupAuthorizedKeys, runLookup } from '../src/login/keys-lookup';
import { readManagedAccounts, serializeManagedAccounts } from '../src/accounts/managed-accounts';
import type { StatPath } from '../src/system/root-owned';
import { createMemorySyslog } from '../src/system/syslog';
import { ED25519, FakeHost, newIam, resolutionFor } from './fakes';

const USER_ID = 'AIDAEXAMPLEALICE0001';
const iam = newIam();
const iamMock = mockClient(iam);

function seedAlice(status: 'Active' | 'Inactive' = 'Active') {
  iamMock.on(GetUserCommand, { UserName: 'alice' }).resolves({
    User: { UserName: 'alice', UserId: USER_ID, Arn: 'arn:aws:iam::1:user/alice', Path: '/', CreateDate: new Date() },
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
}

function deps(host: FakeHost, config: RoleConfig = {}) {
  const resolve = jest.fn(async () => resolutionFor(iam, config));
  return { accounts: host, resolve };
}

beforeEach(() => iamMock.reset());

describe('managed check', () => {
  test.each([
    ['root', 0],
    ['ubuntu', 1000],
    ['ec2-user', 1001],
    ['nobody', 65534],
  ])('existing local account %s (uid %d) is refused before any AWS call', async (name, uid) => {
    seedAlice();
    const d = deps(new FakeHost({ users: [[name, uid]] }));
    await expect(lookupAuthorizedKeys({ user: name }, d)).rejects.toMatchObject({ code: 'NOT_MANAGED' });
    expect(d.resolve).not.toHaveBeenCalled();
    expect(iamMock.calls()).toHaveLength(0);
  });

  test('a legacy-range local user is refused under the wide scheme without an IAM call', async () => {
    const d = deps(new FakeHost({ users: [['alice', 2500]] }));
    await expect(lookupAuthorizedKeys({ user: 'alice' }, d)).rejects.toMatchObject({ code: 'NOT_MANAGED' });
    expect(iamMock.calls()).toHaveLength(0);
  });

  test('a pre-existing legacy-range user whose UID is not derived from the IAM user is refused (no takeover)', async () => {
    seedAlice();
    const derived = unixIdFor(USER_ID, 'legacy');
    const other = derived === 2500 ? 2501 : 2500;
    const d = deps(new FakeHost({ users: [['alice', other]] }), { uidScheme: 'legacy' });
    await expect(lookupAuthorizedKeys({ user: 'alice' }, d)).rejects.toMatchObject({ code: 'NOT_MANAGED' });
  });

  test('an existing keymaker account with the derived UID, in the record, gets its keys', async () => {
    seedAlice();
    const host = new FakeHost({ users: [['alice', unixIdFor(USER_ID, 'wide')]] }).manage('alice', USER_ID);
    const result = await lookupAuthorizedKeys(
      { user: 'alice' },
      { ...deps(host), managedAccounts: () => host.readManaged() },
    );
    expect(result.lines).toEqual([ED25519]);
  });

  describe('the record of managed accounts (issue 13, point 4)', () => {
    const LEGACY_UID = unixIdFor(USER_ID, 'legacy');

    test("a hand-made account whose UID equals the IAM user's derived UID but is not in the record gets no keys, before any AWS call", async () => {
      seedAlice();
      // What ~32,000 CreateUser calls give under the 15-bit legacy scheme: a derived UID equal to a local account's.
      const host = new FakeHost({ users: [['alice', LEGACY_UID]] });
      const d = { ...deps(host, { uidScheme: 'legacy' }), managedAccounts: () => host.readManaged() };
      await expect(lookupAuthorizedKeys({ user: 'alice' }, d)).rejects.toMatchObject({
        code: 'NOT_MANAGED',
        message: expect.stringMatching(/not in keymaker's record/),
      });
      expect(d.resolve).not.toHaveBeenCalled();
      expect(iamMock.calls()).toHaveLength(0);
      // No record source at all: nothing is managed either.
      await expect(lookupAuthorizedKeys({ user: 'alice' }, deps(host, { uidScheme: 'legacy' }))).rejects.toMatchObject({
        code: 'NOT_MANAGED',
      });
    });

    test('in the record under another IAM user ID (a re-created IAM user of that name): no keys', async () => {
      seedAlice();
      const host = new FakeHost({ users: [['alice', LEGACY_UID]] }).manage('alice', 'AIDAEXAMPLEALICEOLD1');
      const d = { ...deps(host, { uidScheme: 'legacy' }), managedAccounts: () => host.readManaged() };
      await expect(lookupAuthorizedKeys({ user: 'alice' }, d)).rejects.toMatchObject({
        code: 'NOT_MANAGED',
        message: expect.stringMatching(/re-created/),
      });
    });

    test('in the record with the same name, UID and IAM user ID: keys', async () => {
      seedAlice();
      const host = new FakeHost({ users: [['alice', LEGACY_UID]] }).manage('alice', USER_ID);
      const d = { ...deps(host, { uidScheme: 'legacy' }), managedAccounts: () => host.readManaged() };
      expect((await lookupAuthorizedKeys({ user: 'alice' }, d)).lines).toEqual([ED25519]);
    });

    test('marked locked by the sync (its IAM user is gone): no keys, before any AWS call (issue 12)', async () => {
      seedAlice();
      const host = new FakeHost({ users: [['alice', LEGACY_UID]] }).manage('alice', USER_ID);
      host.managed_ = host.managed_.map((a) => ({ ...a, locked: true }));
      const d = { ...deps(host, { uidScheme: 'legacy' }), managedAccounts: () => host.readManaged() };
      await expect(lookupAuthorizedKeys({ user: 'alice' }, d)).rejects.toMatchObject({
        code: 'NOT_MANAGED',
        message: expect.stringMatching(/is locked/),
      });
      expect(iamMock.calls()).toHaveLength(0);
    });

    test('a record another user could change is refused: nothing is managed', async () => {
      seedAlice();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-managed.'));
      const file = path.join(dir, 'managed-accounts');
      fs.writeFileSync(file, serializeManagedAccounts([{ name: 'alice', uid: LEGACY_UID, iamUserId: USER_ID }]));
      const stat =
        (mode: number): StatPath =>
        async (p) => ({
          isFile: p === file,
          isDirectory: p !== file,
          isSymlink: false,
          uid: 0,
          mode: p === file ? mode : 0o755,
        });
      const host = new FakeHost({ users: [['alice', LEGACY_UID]] });
      const lookup = (mode: number) =>
        lookupAuthorizedKeys(
          { user: 'alice' },
          { ...deps(host, { uidScheme: 'legacy' }), managedAccounts: () => readManagedAccounts(file, stat(mode)) },
        );
      expect((await lookup(0o644)).lines).toEqual([ED25519]);
      await expect(lookup(0o664)).rejects.toMatchObject({
        code: 'NOT_MANAGED',
        message: expect.stringMatching(/group-writable/),
      });
      await expect(lookup(0o646)).rejects.toMatchObject({
        code: 'NOT_MANAGED',
        message: expect.stringMatching(/world-writable/),
      });
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });

  test('a name with no local account yet (JIT) gets its keys', async () => {
    seedAlice();
    const result = await lookupAuthorizedKeys({ user: 'alice' }, deps(new FakeHost()));
    expect(result.lines).toEqual([ED25519]);
  });

  test('an invalid name is refused before anything', async () => {
    const host = new FakeHost();
    const spy = jest.spyOn(host, 'user');
    const d = deps(host);
    await expect(lookupAuthorizedKeys({ user: '-oProxyCommand=x' }, d)).rejects.toMatchObject({
      code: 'INVALID_USERNAME',
    });
    expect(spy).not.toHaveBeenCalled();
    expect(d.resolve).not.toHaveBeenCalled();
  });

  test('a user outside the required group gets no keys', async () => {
    seedAlice();
    iamMock
      .on(ListGroupsForUserCommand)
      .resolves({ Groups: [{ GroupName: 'other', GroupId: 'AGPA1', Arn: 'a', Path: '/', CreateDate: new Date() }] });
    await expect(
      lookupAuthorizedKeys({ user: 'alice' }, deps(new FakeHost(), { requireIamGroup: 'ssh-users' })),
    ).rejects.toMatchObject({
      code: 'NOT_IN_REQUIRED_GROUP',
    });
  });
});

describe('stored key bodies (compat, issue 14)', () => {
  const stored = async (iamUserName: string) => {
    const parsed = parseSshPublicKey(ED25519);
    if (iamUserName !== 'alice') return new Map();
    if (!parsed.ok) throw new Error(parsed.reason);
    return new Map([['APKAAAAAAAAAAAAAAAA1', parsed.key]]);
  };

  test('a stored body of a listed Active key replaces its GetSSHPublicKey; the log says so', async () => {
    seedAlice();
    const syslog = createMemorySyslog();
    let out = '';
    const keyBodies = jest.fn(stored);
    const code = await runLookup(
      { user: 'alice' },
      { write: (t) => (out += t) },
      { deps: { ...deps(new FakeHost()), keyBodies }, syslog },
    );
    expect(code).toBe(0);
    expect(out).toBe(`${ED25519}\n`);
    expect(keyBodies).toHaveBeenCalledWith('alice');
    expect(iamMock.commandCalls(GetSSHPublicKeyCommand)).toHaveLength(0);
    expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(1);
    expect(syslog.lines[0]!.message).toContain('keys=1 rejected_keys=0 cached_bodies=1 fetched_bodies=0');
  });

  test('the stored bodies are read while the key list is in flight, not before it', async () => {
    seedAlice();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const keyBodies = async (iamUserName: string) => (await gate, stored(iamUserName));
    const lookup = lookupAuthorizedKeys({ user: 'alice' }, { ...deps(new FakeHost()), keyBodies });
    // The read has not answered, yet the key list has already gone to IAM.
    for (let i = 0; i < 20 && iamMock.commandCalls(ListSSHPublicKeysCommand).length === 0; i++)
      await new Promise((resolve) => setImmediate(resolve));
    expect(iamMock.commandCalls(ListSSHPublicKeysCommand)).toHaveLength(1);
    release();
    const result = await lookup;
    expect(result.lines).toEqual([ED25519]);
    expect(result.cachedBodies).toBe(1);
    expect(iamMock.commandCalls(GetSSHPublicKeyCommand)).toHaveLength(0);
  });

  test('a key made Inactive in IAM is not printed despite its stored body', async () => {
    seedAlice('Inactive');
    const result = await lookupAuthorizedKeys({ user: 'alice' }, { ...deps(new FakeHost()), keyBodies: stored });
    expect(result.lines).toEqual([]);
    expect(result.cachedBodies).toBe(0);
  });

  test('unreadable stored bodies cost only the second wave: the bodies are fetched', async () => {
    seedAlice();
    const result = await lookupAuthorizedKeys(
      { user: 'alice' },
      { ...deps(new FakeHost()), keyBodies: () => Promise.reject(new Error('EIO')) },
    );
    expect(result.lines).toEqual([ED25519]);
    expect(result.fetchedBodies).toBe(1);
    expect(iamMock.commandCalls(GetSSHPublicKeyCommand)).toHaveLength(1);
  });
});

describe('runLookup', () => {
  test('prints the keys and logs user, fingerprint, reason and key count', async () => {
    seedAlice();
    const syslog = createMemorySyslog();
    let out = '';
    const code = await runLookup(
      { user: 'alice', fingerprint: 'SHA256:abc' },
      { write: (t) => (out += t) },
      { deps: deps(new FakeHost()), syslog },
    );
    expect(code).toBe(0);
    expect(out).toBe(`${ED25519}\n`);
    expect(syslog.lines).toHaveLength(1);
    expect(syslog.lines[0]!.message).toMatch(
      /user="alice" fingerprint=SHA256:abc decision=keys reason=iam_keys iam_user=alice keys=1/,
    );
    expect(syslog.lines[0]!.message).not.toContain('AAAA');
  });

  test('root is refused, logged with the reason, nothing printed', async () => {
    const syslog = createMemorySyslog();
    let out = '';
    const code = await runLookup(
      { user: 'root', fingerprint: 'SHA256:abc' },
      { write: (t) => (out += t) },
      { deps: deps(new FakeHost({ users: [['root', 0]] })), syslog },
    );
    expect(code).toBe(EXIT_CODES.NOT_MANAGED);
    expect(out).toBe('');
    expect(syslog.lines[0]).toMatchObject({ level: 'warning' });
    expect(syslog.lines[0]!.message).toMatch(/user="root" fingerprint=SHA256:abc decision=refused reason=NOT_MANAGED/);
  });

  test('fails closed within the deadline when AWS hangs', async () => {
    const syslog = createMemorySyslog();
    let out = '';
    const started = Date.now();
    const hang = { accounts: new FakeHost(), resolve: () => new Promise<never>(() => undefined) };
    const code = await runLookup(
      { user: 'alice' },
      { write: (t) => (out += t) },
      { deps: hang, syslog, deadlineMs: 200 },
    );
    expect(code).toBe(EXIT_CODES.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(out).toBe('');
    expect(syslog.lines[0]!.message).toMatch(/reason=DEADLINE_EXCEEDED/);
  });

  test('a throttled IAM call prints nothing and exits non-zero', async () => {
    iamMock.on(ListSSHPublicKeysCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    iamMock.on(GetUserCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    iamMock.on(GetGroupCommand).resolves({});
    const syslog = createMemorySyslog();
    let out = '';
    const code = await runLookup(
      { user: 'alice' },
      { write: (t) => (out += t) },
      { deps: deps(new FakeHost()), syslog },
    );
    expect(code).toBe(EXIT_CODES.THROTTLED);
    expect(out).toBe('');
  });

  test('log lines cannot be forged through the user name', async () => {
    const syslog = createMemorySyslog();
    await runLookup({ user: 'x\ndecision=keys' }, { write: () => undefined }, { deps: deps(new FakeHost()), syslog });
    expect(syslog.lines[0]!.message).not.toContain('\n');
    expect(syslog.lines[0]!.message).toContain('reason=INVALID_USERNAME');
  });
});
