import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryIdentitySource, startUserdbService, type IdentitySource } from '../src/agent/userdb-service';
import type { ResolvedUser } from '../src/agent/userdb-records';
import type { VarlinkServer } from '../src/agent/varlink';
import { call } from './agent-client';

const S = 'io.keymaker.test';
const alice: ResolvedUser = {
  linuxName: 'alice',
  uid: 1879048200,
  gid: 1879048200,
  iamUserName: 'alice',
  homeBase: '/home',
  shell: '/bin/bash',
};
const bob: ResolvedUser = {
  linuxName: 'bob',
  uid: 1879048300,
  gid: 1879048300,
  iamUserName: 'Bob',
  homeBase: '/home',
  shell: '/bin/sh',
};
const devs = { linuxName: 'devs', gid: 1879050000, members: ['alice', 'bob'] };
const ops = { linuxName: 'ops', gid: 1879050001, members: ['bob'] };

const userRec = (u: ResolvedUser) => ({
  parameters: {
    record: {
      userName: u.linuxName,
      uid: u.uid,
      gid: u.gid,
      realName: u.iamUserName,
      homeDirectory: `/home/${u.linuxName}`,
      shell: u.shell,
      disposition: 'regular',
      service: S,
    },
    incomplete: false,
  },
});
const err = (name: string) => ({ error: `io.systemd.UserDatabase.${name}`, parameters: {} });
const invalidParam = (parameter: string) => ({
  error: 'org.varlink.service.InvalidParameter',
  parameters: { parameter },
});

describe('io.systemd.UserDatabase service', () => {
  let dir: string;
  let server: VarlinkServer;
  let socket: string;
  const source = new MemoryIdentitySource({ users: [alice, bob], groups: [devs, ops] });
  const q = (method: string, parameters: Record<string, unknown>, more = false) =>
    call(socket, `io.systemd.UserDatabase.${method}`, { service: S, ...parameters }, { more });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-userdb.'));
    ({ server, socketPath: socket } = (await startUserdbService({ source, serviceName: S, directory: dir })) as {
      server: VarlinkServer;
      socketPath: string;
    });
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is <directory>/<service name>, mode 0666', () => {
    expect(socket).toBe(path.join(dir, S));
    expect(fs.statSync(socket).mode & 0o777).toBe(0o666);
  });

  test('GetUserRecord by userName and by uid', async () => {
    expect(await q('GetUserRecord', { userName: 'alice' })).toEqual([userRec(alice)]);
    expect(await q('GetUserRecord', { uid: bob.uid })).toEqual([userRec(bob)]);
    expect(await q('GetUserRecord', { userName: 'bob', uid: bob.uid })).toEqual([userRec(bob)]);
  });

  test('GetUserRecord: unknown, invalid name, conflicting name+uid', async () => {
    expect(await q('GetUserRecord', { userName: 'carol' })).toEqual([err('NoRecordFound')]);
    expect(await q('GetUserRecord', { uid: 12345 })).toEqual([err('NoRecordFound')]);
    expect(await q('GetUserRecord', { userName: 'Not Valid' })).toEqual([err('NoRecordFound')]);
    expect(await q('GetUserRecord', { userName: 'alice', uid: bob.uid })).toEqual([err('ConflictingRecordFound')]);
  });

  test('BadService when the service parameter is not the socket name (or missing)', async () => {
    expect(await q('GetUserRecord', { userName: 'alice', service: 'io.systemd.Multiplexer' })).toEqual([
      err('BadService'),
    ]);
    expect(await call(socket, 'io.systemd.UserDatabase.GetUserRecord', { userName: 'alice' })).toEqual([
      err('BadService'),
    ]);
    expect(await q('GetGroupRecord', { groupName: 'devs', service: 'x.y' })).toEqual([err('BadService')]);
    expect(await q('GetMemberships', { userName: 'alice', service: 'x.y' }, true)).toEqual([err('BadService')]);
  });

  test('strict parameters: wrong types and unknown keys -> InvalidParameter', async () => {
    expect(await q('GetUserRecord', { uid: 'alice' })).toEqual([invalidParam('uid')]);
    expect(await q('GetUserRecord', { uid: -1 })).toEqual([invalidParam('uid')]);
    expect(await q('GetUserRecord', { uid: 4294967295 })).toEqual([invalidParam('uid')]);
    expect(await q('GetUserRecord', { userName: 7 })).toEqual([invalidParam('userName')]);
    expect(await q('GetUserRecord', { userName: 'alice', extra: 1 })).toEqual([invalidParam('extra')]);
    expect(await q('GetGroupRecord', { gid: 1.5 })).toEqual([invalidParam('gid')]);
    expect(await q('GetMemberships', { uid: 1 }, true)).toEqual([invalidParam('uid')]);
    // null means "not given", as systemd's dispatcher treats it
    expect(await q('GetUserRecord', { userName: 'alice', uid: null })).toEqual([userRec(alice)]);
  });

  test('GetGroupRecord by name and gid; members in the record; private groups', async () => {
    const devsRec = {
      parameters: {
        record: { groupName: 'devs', gid: devs.gid, members: ['alice', 'bob'], disposition: 'regular', service: S },
        incomplete: false,
      },
    };
    expect(await q('GetGroupRecord', { groupName: 'devs' })).toEqual([devsRec]);
    expect(await q('GetGroupRecord', { gid: devs.gid })).toEqual([devsRec]);
    const aliceGroup = {
      parameters: {
        record: { groupName: 'alice', gid: alice.gid, disposition: 'regular', service: S },
        incomplete: false,
      },
    };
    expect(await q('GetGroupRecord', { groupName: 'alice' })).toEqual([aliceGroup]);
    expect(await q('GetGroupRecord', { gid: alice.gid })).toEqual([aliceGroup]);
    expect(await q('GetGroupRecord', { groupName: 'nope' })).toEqual([err('NoRecordFound')]);
    expect(await q('GetGroupRecord', { gid: 4242 })).toEqual([err('NoRecordFound')]);
    expect(await q('GetGroupRecord', { groupName: 'ops', gid: devs.gid })).toEqual([err('ConflictingRecordFound')]);
  });

  test('GetMemberships by user, by group, by both, and enumerated', async () => {
    expect(await q('GetMemberships', { userName: 'bob' }, true)).toEqual([
      { parameters: { userName: 'bob', groupName: 'devs' }, continues: true },
      { parameters: { userName: 'bob', groupName: 'ops' } },
    ]);
    expect(await q('GetMemberships', { groupName: 'devs' }, true)).toEqual([
      { parameters: { userName: 'alice', groupName: 'devs' }, continues: true },
      { parameters: { userName: 'bob', groupName: 'devs' } },
    ]);
    expect(await q('GetMemberships', { userName: 'alice', groupName: 'devs' })).toEqual([
      { parameters: { userName: 'alice', groupName: 'devs' } },
    ]);
    expect(await q('GetMemberships', { userName: 'alice', groupName: 'ops' })).toEqual([err('NoRecordFound')]);
    expect(await q('GetMemberships', { userName: 'carol' }, true)).toEqual([err('NoRecordFound')]);
    expect(await q('GetMemberships', { groupName: 'alice' }, true)).toEqual([err('NoRecordFound')]); // private group: no members
    expect((await q('GetMemberships', {}, true)).map((r) => r.parameters)).toEqual([
      { userName: 'alice', groupName: 'devs' },
      { userName: 'bob', groupName: 'devs' },
      { userName: 'bob', groupName: 'ops' },
    ]);
  });

  test('enumeration returns only the known records, and needs more', async () => {
    const users = await q('GetUserRecord', {}, true);
    expect(users.map((r) => (r.parameters as { record: { userName: string } }).record.userName)).toEqual([
      'alice',
      'bob',
    ]);
    expect(users.map((r) => r.continues)).toEqual([true, undefined]);
    const groups = await q('GetGroupRecord', {}, true);
    expect(groups.map((r) => (r.parameters as { record: { groupName: string } }).record.groupName)).toEqual([
      'devs',
      'ops',
      'alice',
      'bob',
    ]);
    expect(await q('GetUserRecord', {})).toEqual([{ error: 'org.varlink.service.ExpectedMore', parameters: {} }]);
    expect(await q('GetMemberships', { userName: 'bob' })).toEqual([
      { error: 'org.varlink.service.ExpectedMore', parameters: {} },
    ]);
  });

  test('a record the source got wrong is not served: ServiceNotAvailable', async () => {
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-userdb-bad.'));
    const events: unknown[] = [];
    const bad = new MemoryIdentitySource({ users: [{ ...alice, homeBase: 'relative' }] });
    const { server: s2, socketPath } = await startUserdbService({
      source: bad,
      serviceName: S,
      directory: dir2,
      log: (e) => events.push(e),
    });
    try {
      expect(
        await call(socketPath!, 'io.systemd.UserDatabase.GetUserRecord', { userName: 'alice', service: S }),
      ).toEqual([err('ServiceNotAvailable')]);
      expect(events).toContainEqual(expect.objectContaining({ type: 'bad-record' }));
    } finally {
      await s2.close();
      fs.rmSync(dir2, { recursive: true, force: true });
    }
  });

  test('refuses a deadline over 1 s and a service name that is not reverse-DNS', async () => {
    await expect(startUserdbService({ source, serviceName: S, directory: dir, deadlineMs: 5000 })).rejects.toThrow(
      /at most 1000/,
    );
    await expect(startUserdbService({ source, serviceName: '../x', directory: dir })).rejects.toThrow(/reverse-DNS/);
  });
});

describe('the deadline: a source that never answers', () => {
  const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const aborted: string[] = [];
  const hanging: IdentitySource = {
    lookupUser: (name, signal) => {
      signal?.addEventListener('abort', () => aborted.push(name));
      return never();
    },
    userByUid: () => never(),
    group: () => never(),
    groupByGid: () => never(),
    groupsOfUser: () => never(),
    knownUsers: () => [],
    knownGroups: () => [],
  };

  test.each([
    ['ServiceNotAvailable', undefined],
    ['NoRecordFound', 'NoRecordFound' as const],
  ])('every method replies %s within the deadline', async (expected, onDeadline) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-userdb-hang.'));
    const { server, socketPath } = await startUserdbService({
      source: hanging,
      serviceName: S,
      directory: dir,
      deadlineMs: 300,
      onDeadline,
    });
    try {
      const calls: [string, Record<string, unknown>, boolean][] = [
        ['GetUserRecord', { userName: 'slowuser' }, false],
        ['GetUserRecord', { uid: 1879048999 }, false],
        ['GetGroupRecord', { groupName: 'slowgroup' }, false],
        ['GetGroupRecord', { gid: 1879048999 }, false],
        ['GetMemberships', { userName: 'slowuser' }, true],
        ['GetMemberships', { groupName: 'slowgroup' }, true],
      ];
      const started = Date.now();
      const replies = await Promise.all(
        calls.map(([m, p, more]) => call(socketPath!, `io.systemd.UserDatabase.${m}`, { service: S, ...p }, { more })),
      );
      const took = Date.now() - started;
      for (const r of replies) expect(r).toEqual([err(expected)]);
      expect(took).toBeGreaterThanOrEqual(290);
      expect(took).toBeLessThan(10_000);
      expect(aborted).toContain('slowuser'); // the source is told the caller stopped waiting
      // known-only enumeration never touches the source: immediate
      const t0 = Date.now();
      expect(await call(socketPath!, 'io.systemd.UserDatabase.GetUserRecord', { service: S }, { more: true })).toEqual([
        err('NoRecordFound'),
      ]);
      expect(Date.now() - t0).toBeLessThan(200);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('one NSS operation, several calls for one stuck name: one deadline, then immediate answers; one source lookup', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-userdb-flight.'));
    let groupLookups = 0;
    let release: (g: undefined) => void = () => undefined;
    const slow: IdentitySource = {
      ...hanging,
      lookupUser: async () => undefined,
      group: () => (groupLookups++, new Promise((r) => (release = r))),
    };
    const { server, socketPath } = await startUserdbService({
      source: slow,
      serviceName: S,
      directory: dir,
      deadlineMs: 300,
    });
    try {
      const t0 = Date.now();
      // getgrnam: GetGroupRecord, then GetMemberships{groupName}, one after the other
      expect(
        await call(socketPath!, 'io.systemd.UserDatabase.GetGroupRecord', { service: S, groupName: 'stuck' }),
      ).toEqual([err('ServiceNotAvailable')]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      const t1 = Date.now();
      expect(
        await call(
          socketPath!,
          'io.systemd.UserDatabase.GetMemberships',
          { service: S, groupName: 'stuck' },
          { more: true },
        ),
      ).toEqual([err('ServiceNotAvailable')]);
      expect(Date.now() - t1).toBeLessThan(100);
      expect(groupLookups).toBe(1);
      // once the lookup settles, the next call asks the source again
      release(undefined);
      await new Promise((r) => setTimeout(r, 10));
      const next = call(socketPath!, 'io.systemd.UserDatabase.GetGroupRecord', { service: S, groupName: 'stuck' });
      await new Promise((r) => setTimeout(r, 50));
      expect(groupLookups).toBe(2);
      release(undefined);
      expect(await next).toEqual([err('NoRecordFound')]);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
