import { unixIdFor } from '@keymaker/core';
import {
  IamIdentitySource,
  type DirectoryGroup,
  type DirectoryMemberships,
  type DirectorySource,
  type DirectoryUser,
  type IamIdentitySourceOptions,
  type IdentityEvent,
} from '../src/agent/iam-identity-source';
import type { GroupEntry, LocalAccounts, PasswdEntry } from '../src/accounts/local-accounts';

interface FakeUser {
  iamUserName: string;
  userId: string;
  activeKeys: number;
  inRequiredGroup: boolean;
  groups: DirectoryGroup[];
}

/** An in-memory IAM seen through DirectorySource, counting calls. */
class FakeDirectory implements DirectorySource {
  uidScheme: 'wide' | 'legacy' = 'wide';
  users = new Map<string, FakeUser>();
  calls = { user: 0, hasActiveKey: 0, memberships: 0 };
  /** When set, every call throws it. */
  failing?: Error;
  /** When set, user() waits for this before answering. */
  gate?: Promise<void>;

  add(linuxName: string, init: Partial<FakeUser> = {}): FakeUser {
    const user: FakeUser = {
      iamUserName: linuxName,
      userId: `AIDA${linuxName.toUpperCase().replace(/[^A-Z0-9]/g, 'X')}0001`,
      activeKeys: 1,
      inRequiredGroup: true,
      groups: [],
      ...init,
    };
    this.users.set(linuxName, user);
    return user;
  }
  get total() {
    return this.calls.user + this.calls.hasActiveKey + this.calls.memberships;
  }
  async user(linuxName: string): Promise<DirectoryUser | undefined> {
    this.calls.user++;
    if (this.gate) await this.gate;
    if (this.failing) throw this.failing;
    const u = this.users.get(linuxName);
    return u && { iamUserName: u.iamUserName, userId: u.userId };
  }
  async hasActiveKey(iamUserName: string): Promise<boolean> {
    this.calls.hasActiveKey++;
    if (this.failing) throw this.failing;
    return [...this.users.values()].some((u) => u.iamUserName === iamUserName && u.activeKeys > 0);
  }
  async memberships(iamUserName: string): Promise<DirectoryMemberships> {
    this.calls.memberships++;
    if (this.failing) throw this.failing;
    const u = [...this.users.values()].find((x) => x.iamUserName === iamUserName);
    return u ? { inRequiredGroup: u.inRequiredGroup, groups: [...u.groups] } : { inRequiredGroup: false, groups: [] };
  }
}

class FakeAccounts implements LocalAccounts {
  users_: PasswdEntry[] = [];
  groups_: GroupEntry[] = [];
  failing?: Error;
  calls = 0;
  addUser(name: string, uid: number) {
    this.users_.push({ name, uid, gid: uid, gecos: '', home: `/home/${name}`, shell: '/bin/bash' });
  }
  private check() {
    this.calls++;
    if (this.failing) throw this.failing;
  }
  async user(name: string) {
    this.check();
    return this.users_.find((u) => u.name === name);
  }
  async userByUid(uid: number) {
    this.check();
    return this.users_.find((u) => u.uid === uid);
  }
  async group(name: string) {
    this.check();
    return this.groups_.find((g) => g.name === name);
  }
  async groupByGid(gid: number) {
    this.check();
    return this.groups_.find((g) => g.gid === gid);
  }
  async users() {
    return this.users_;
  }
  async groups() {
    return this.groups_;
  }
}

const MANAGED_GID = 1879000000;
const group = (
  linuxName: string,
  groupId = `AGPA${linuxName.toUpperCase().replace(/[^A-Z0-9]/g, 'X')}01`,
): DirectoryGroup => ({ iamGroupName: `keymaker_${linuxName}`, linuxName, groupId });
const uidOf = (userId: string) => unixIdFor(userId, 'wide');

function setup(options: Partial<IamIdentitySourceOptions> = {}) {
  const iam = new FakeDirectory();
  const local = new FakeAccounts();
  let now = 1_000_000;
  const events: IdentityEvent[] = [];
  const source = new IamIdentitySource({
    directory: iam,
    accounts: local,
    managedGroup: { gid: MANAGED_GID },
    clock: () => now,
    log: (e) => events.push(e),
    ...options,
  });
  return { iam, local, source, events, advance: (ms: number) => (now += ms) };
}

describe('IamIdentitySource: gates', () => {
  test('a valid IAM user with an active key resolves to a full record', async () => {
    const { iam, source } = setup({ homeBase: '/srv/home', shell: '/bin/zsh' });
    const alice = iam.add('alice', { iamUserName: 'Alice' });
    const user = await source.lookupUser('alice');
    expect(user).toEqual({
      linuxName: 'alice',
      uid: uidOf(alice.userId),
      gid: uidOf(alice.userId),
      iamUserName: 'Alice',
      homeBase: '/srv/home',
      shell: '/bin/zsh',
    });
    expect(iam.calls).toEqual({ user: 1, hasActiveKey: 1, memberships: 1 });
  });

  test.each([
    ['an invalid name', 'Not Valid'],
    ['a name with a leading dash', '-oops'],
    ["core's reserved name", 'root'],
    ['a package account', 'postgres'],
    ['a systemd- prefixed name', 'systemd-network'],
    ["the host config's reserved name", 'deploy'],
    ['the managed group name', 'keymaker-users'],
  ])('%s is refused with no I/O at all', async (_what, name) => {
    const { iam, local, source } = setup({ reservedNames: ['deploy'] });
    iam.add(name.toLowerCase().replace(/[^a-z0-9_-]/g, '_'));
    expect(await source.lookupUser(name)).toBeUndefined();
    expect(iam.total).toBe(0);
    expect(local.calls).toBe(0);
  });

  test('a local account of that name is refused before any IAM call', async () => {
    const { iam, local, source, events } = setup();
    iam.add('ubuntu');
    local.addUser('ubuntu', 1000);
    expect(await source.lookupUser('ubuntu')).toBeUndefined();
    expect(iam.total).toBe(0);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'refused', name: 'ubuntu', reason: 'local-account' }),
    );
  });

  test('a local accounts reader that fails refuses (fail closed), no IAM call', async () => {
    const { iam, local, source } = setup();
    iam.add('alice');
    local.failing = new Error('getent broke');
    expect(await source.lookupUser('alice')).toBeUndefined();
    expect(iam.total).toBe(0);
  });

  test('no IAM user: one IAM call, refused', async () => {
    const { iam, source, events } = setup();
    expect(await source.lookupUser('nobody-here')).toBeUndefined();
    expect(iam.calls).toEqual({ user: 1, hasActiveKey: 0, memberships: 0 });
    expect(events).toContainEqual(expect.objectContaining({ type: 'refused', reason: 'no-iam-user' }));
  });

  test('no active key: refused', async () => {
    const { iam, source, events } = setup();
    iam.add('bob', { activeKeys: 0 });
    expect(await source.lookupUser('bob')).toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'refused', reason: 'no-active-key' }));
  });

  test('not in the required group: refused', async () => {
    const { iam, source, events } = setup();
    iam.add('carol', { inRequiredGroup: false });
    expect(await source.lookupUser('carol')).toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'refused', reason: 'not-in-required-group' }));
  });

  test("the derived UID is a local account's UID, or a local group's GID: refused", async () => {
    const { iam, local, source, events } = setup();
    const dave = iam.add('dave');
    const erin = iam.add('erin');
    local.addUser('legacy-dave', uidOf(dave.userId));
    local.groups_.push({ name: 'old', gid: uidOf(erin.userId), members: [] });
    expect(await source.lookupUser('dave')).toBeUndefined();
    expect(await source.lookupUser('erin')).toBeUndefined();
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'refused', name: 'dave', reason: 'uid-of-local-account', other: 'legacy-dave' }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'refused', name: 'erin', reason: 'uid-of-local-group', other: 'old' }),
    );
  });

  test('a malformed IAM answer (bad unique ID) is refused', async () => {
    const { iam, source, events } = setup();
    iam.add('frank', { userId: 'AIDA:../..' });
    expect(await source.lookupUser('frank')).toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'refused', reason: 'bad-iam-answer' }));
  });

  test('UID collision: two IAM users deriving the same UID, the second is refused', async () => {
    const { iam, source, events } = setup();
    iam.uidScheme = 'legacy';
    // Find two unique IDs that derive the same legacy UID (32,768 values: a birthday search).
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const id = `AIDATEST${i.toString().padStart(8, '0')}`;
      const uid = unixIdFor(id, 'legacy');
      const other = seen.get(uid);
      if (other) pair = [other, id];
      else seen.set(uid, id);
    }
    iam.add('first', { userId: pair[0] });
    iam.add('second', { userId: pair[1] });
    const first = await source.lookupUser('first');
    expect(first?.uid).toBe(unixIdFor(pair[0], 'legacy'));
    expect(await source.lookupUser('second')).toBeUndefined();
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'refused', name: 'second', reason: 'uid-collision', other: 'first' }),
    );
    expect(await source.userByUid(first!.uid)).toEqual(first);
  });
});

describe('IamIdentitySource: groups', () => {
  test('prefixed IAM groups become groups (derived GID, known members) plus the managed group', async () => {
    const { iam, source } = setup();
    const devs = group('devs');
    iam.add('alice', { groups: [devs, group('ops')] });
    iam.add('bob', { groups: [devs] });
    await source.lookupUser('alice');
    expect(await source.group('devs')).toEqual({ linuxName: 'devs', gid: uidOf(devs.groupId), members: ['alice'] });
    await source.lookupUser('bob');
    expect(await source.group('devs')).toEqual({
      linuxName: 'devs',
      gid: uidOf(devs.groupId),
      members: ['alice', 'bob'],
    });
    expect(await source.groupByGid(uidOf(devs.groupId))).toMatchObject({ linuxName: 'devs' });
    expect(await source.group('keymaker-users')).toEqual({
      linuxName: 'keymaker-users',
      gid: MANAGED_GID,
      members: ['alice', 'bob'],
    });
    expect(await source.groupsOfUser('alice')).toEqual(['keymaker-users', 'devs', 'ops']);
    expect(await source.groupsOfUser('bob')).toEqual(['keymaker-users', 'devs']);
    expect(source.knownGroups().map((g) => g.linuxName)).toEqual(['keymaker-users', 'devs', 'ops']);
  });

  test('the managed group name is configurable', async () => {
    const { iam, source } = setup({ managedGroup: { name: 'iam-users', gid: 1879000001 } });
    iam.add('alice');
    await source.lookupUser('alice');
    expect(await source.group('iam-users')).toEqual({ linuxName: 'iam-users', gid: 1879000001, members: ['alice'] });
  });

  test('reserved, local, or clashing groups are dropped; the user and her other groups are served', async () => {
    const { iam, local, source, events } = setup();
    const takenGid = group('taken');
    local.groups_.push({ name: 'docker-local', gid: uidOf(takenGid.groupId), members: [] });
    local.groups_.push({ name: 'localgrp', gid: 5000, members: [] });
    iam.add('alice', {
      groups: [
        group('sudo'),
        group('localgrp'),
        takenGid,
        group('keymaker-users'),
        group('alice'),
        group('devs'),
        { iamGroupName: 'keymaker_x', linuxName: 'x', groupId: '' },
      ],
    });
    expect(await source.lookupUser('alice')).toBeDefined();
    expect(await source.groupsOfUser('alice')).toEqual(['keymaker-users', 'devs']);
    expect(await source.group('sudo')).toBeUndefined();
    const dropped = events.filter((e) => e.type === 'group-dropped').map((e) => (e as { group: string }).group);
    expect(dropped.sort()).toEqual(['alice', 'keymaker-users', 'localgrp', 'sudo', 'taken', 'x']);
  });

  test('a UID/GID lookup never asks IAM: only what is known', async () => {
    const { iam, source } = setup();
    expect(await source.userByUid(1879048200)).toBeUndefined();
    expect(await source.groupByGid(1879048200)).toBeUndefined();
    expect(await source.group('devs')).toBeUndefined();
    expect(source.knownUsers()).toEqual([]);
    expect(iam.total).toBe(0);
  });
});

describe('IamIdentitySource: caches', () => {
  test('positive: served from memory within the refresh interval, then stale-while-recheck', async () => {
    const { iam, source, advance } = setup({ refreshIntervalMs: 300_000 });
    iam.add('alice');
    await source.lookupUser('alice');
    advance(299_000);
    await source.lookupUser('alice');
    expect(iam.calls.user).toBe(1);
    advance(2_000);
    expect(await source.lookupUser('alice')).toBeDefined(); // stale: served, re-check started
    await new Promise((r) => setImmediate(r));
    expect(iam.calls.user).toBe(2);
  });

  test('negative: a refused name is not asked again for negativeTtlMs', async () => {
    const { iam, source, advance } = setup({ negativeTtlMs: 60_000 });
    for (let i = 0; i < 5; i++) await source.lookupUser('ghost');
    expect(iam.calls.user).toBe(1);
    advance(59_000);
    await source.lookupUser('ghost');
    expect(iam.calls.user).toBe(1);
    advance(1_000);
    iam.add('ghost');
    expect(await source.lookupUser('ghost')).toBeDefined();
    expect(iam.calls.user).toBe(2);
  });

  test('an IAM error: not found, cached for errorTtlMs only', async () => {
    const { iam, source, advance, events } = setup({ errorTtlMs: 10_000 });
    iam.add('alice');
    iam.failing = new Error('throttled');
    expect(await source.lookupUser('alice')).toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'error', name: 'alice', kept: false }));
    await source.lookupUser('alice');
    expect(iam.calls.user).toBe(1);
    iam.failing = undefined;
    advance(10_000);
    expect(await source.lookupUser('alice')).toBeDefined();
  });

  test('in-flight de-duplication: 50 concurrent lookups of one name are one resolution', async () => {
    const { iam, source } = setup();
    iam.add('alice');
    let open!: () => void;
    iam.gate = new Promise((r) => (open = r));
    const all = Promise.all(Array.from({ length: 50 }, () => source.lookupUser('alice')));
    open();
    const users = await all;
    expect(users.every((u) => u?.linuxName === 'alice')).toBe(true);
    expect(iam.calls).toEqual({ user: 1, hasActiveKey: 1, memberships: 1 });
  });
});

describe('IamIdentitySource: deadlines', () => {
  test('an aborted caller gets a rejection at once; the resolution finishes in the background and the retry hits the cache', async () => {
    const { iam, source } = setup();
    iam.add('alice');
    let open!: () => void;
    iam.gate = new Promise((r) => (open = r));
    const controller = new AbortController();
    const pending = source.lookupUser('alice', controller.signal);
    controller.abort();
    await expect(pending).rejects.toThrow(/stopped waiting/);
    open();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(await source.lookupUser('alice', AbortSignal.timeout(1000))).toMatchObject({ linuxName: 'alice' });
    expect(iam.calls.user).toBe(1);
  });

  test('an already aborted signal is refused without any work', async () => {
    const { iam, source } = setup();
    iam.add('alice');
    await expect(source.lookupUser('alice', AbortSignal.abort())).rejects.toThrow();
    await expect(source.userByUid(1, AbortSignal.abort())).rejects.toThrow();
    expect(iam.total).toBe(0);
  });

  test('a resolution that never settles is abandoned after resolveTimeoutMs (not found)', async () => {
    const { iam, source, events } = setup({ resolveTimeoutMs: 30 });
    iam.add('alice');
    iam.gate = new Promise(() => undefined);
    expect(await source.lookupUser('alice')).toBeUndefined();
    expect(events).toContainEqual(expect.objectContaining({ type: 'error', name: 'alice' }));
    expect(source.stats().inFlight).toBe(0);
  });
});

describe('IamIdentitySource: flood guard', () => {
  test('an agent restarted on a busy host resolves 200 real users in a row; unknown names still get 20', async () => {
    const { iam, source, events } = setup();
    const users = Array.from({ length: 200 }, (_, i) => `user${i}`);
    for (const u of users) iam.add(u);
    // Logins arrive one after another (20 at the same instant would still find the guard's burst used up).
    const answers = [];
    for (const u of users) answers.push(await source.lookupUser(u));
    expect(answers.filter((a) => a !== undefined)).toHaveLength(200);
    expect(events.filter((e) => e.type === 'rate-limited')).toHaveLength(0);
    const random = await Promise.all(Array.from({ length: 100 }, (_, i) => source.lookupUser(`nosuch${i}`)));
    expect(random.every((a) => a === undefined)).toBe(true);
    expect(iam.calls.user).toBe(200 + 20);
  });

  test('1,000 random names cost at most globalBurst resolutions (20 by default); known users are unaffected', async () => {
    const { iam, source, events, advance } = setup();
    iam.add('alice');
    await source.lookupUser('alice');
    const before = iam.total;
    const names = Array.from({ length: 1000 }, (_, i) => `rnd${i.toString(36)}x${(i * 7919).toString(36)}`);
    const answers = await Promise.all(names.map((n) => source.lookupUser(n)));
    expect(answers.every((a) => a === undefined)).toBe(true);
    const resolutions = iam.calls.user - 1;
    const calls = iam.total - before;
    // Default: burst 20 (alice, a served user, gave her token back): 1 IAM call each (GetUser).
    expect(resolutions).toBe(20);
    expect(calls).toBe(20);
    expect(events.filter((e) => e.type === 'rate-limited')).toHaveLength(980);
    expect(await source.lookupUser('alice')).toBeDefined();
    expect(iam.total - before).toBe(20);
    // The global bucket refills 12 per minute.
    advance(60_000);
    await Promise.all(names.map((n) => source.lookupUser(`${n}y`)));
    expect(iam.calls.user - 1 - resolutions).toBe(12);
    console.log(
      `flood guard: 1,000 random names -> ${resolutions} resolutions, ${calls} IAM calls (then 12 per minute)`,
    );
  });

  test('per name: one name failing over and over is resolved at most perNameBurst times, then once per interval', async () => {
    const { iam, source, advance } = setup({ errorTtlMs: 0 });
    iam.failing = new Error('IAM down');
    for (let i = 0; i < 10; i++) await source.lookupUser('alice');
    expect(iam.calls.user).toBe(2);
    advance(60_000);
    for (let i = 0; i < 10; i++) await source.lookupUser('alice');
    expect(iam.calls.user).toBe(3);
  });
});

describe('IamIdentitySource: refresh and revocation', () => {
  async function withUsers() {
    const ctx = setup({ refreshIntervalMs: 300_000, maxStaleMs: 900_000 });
    const devs = group('devs');
    ctx.iam.add('alice', { groups: [devs] });
    ctx.iam.add('bob', { groups: [devs] });
    ctx.iam.add('carol');
    ctx.iam.add('dave');
    for (const n of ['alice', 'bob', 'carol', 'dave']) expect(await ctx.source.lookupUser(n)).toBeDefined();
    return { ...ctx, devs };
  }

  test('re-checks only known users; an unchanged host reports nothing', async () => {
    const { iam, source } = await withUsers();
    iam.calls = { user: 0, hasActiveKey: 0, memberships: 0 };
    const report = await source.refresh();
    expect(report).toEqual({
      checked: 4,
      unchanged: 4,
      changed: [],
      revoked: [],
      failed: [],
      expired: [],
      groupsAdded: [],
      groupsRemoved: [],
    });
    expect(iam.calls).toEqual({ user: 4, hasActiveKey: 4, memberships: 4 });
  });

  test('removed from IAM, from the required group, or no active key left: stops resolving at the next refresh', async () => {
    const { iam, source } = await withUsers();
    const aliceUid = (await source.lookupUser('alice'))!.uid;
    iam.users.delete('alice');
    iam.users.get('bob')!.inRequiredGroup = false;
    iam.users.get('carol')!.activeKeys = 0;
    const report = await source.refresh();
    expect(report.revoked.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'alice', iamUserName: 'alice', reason: 'no-iam-user' },
      { name: 'bob', iamUserName: 'bob', reason: 'not-in-required-group' },
      { name: 'carol', iamUserName: 'carol', reason: 'no-active-key' },
    ]);
    expect(report.groupsRemoved).toEqual(['devs']);
    for (const n of ['alice', 'bob', 'carol']) expect(await source.lookupUser(n)).toBeUndefined();
    expect(await source.userByUid(aliceUid)).toBeUndefined();
    expect(source.knownUsers().map((u) => u.linuxName)).toEqual(['dave']);
    expect(await source.group('keymaker-users')).toMatchObject({ members: ['dave'] });
  });

  test('a group deleted in IAM: gone from its members at the next refresh', async () => {
    const { iam, source, devs } = await withUsers();
    for (const n of ['alice', 'bob']) iam.users.get(n)!.groups = [];
    const report = await source.refresh();
    expect(report.groupsRemoved).toEqual(['devs']);
    expect(report.changed.map((c) => c.name).sort()).toEqual(['alice', 'bob']);
    expect(await source.group('devs')).toBeUndefined();
    expect(await source.groupByGid(uidOf(devs.groupId))).toBeUndefined();
    expect(await source.groupsOfUser('alice')).toEqual(['keymaker-users']);
  });

  test('a user re-created in IAM (new unique ID) is reported as changed with a new UID', async () => {
    const { iam, source } = await withUsers();
    iam.users.get('dave')!.userId = 'AIDADAVE0002';
    const report = await source.refresh();
    expect(report.changed.map((c) => c.name)).toEqual(['dave']);
    expect(report.changed[0]!.what.map((w) => w.split(' ')[0])).toEqual(['IAM', 'uid']);
    expect((await source.lookupUser('dave'))!.uid).toBe(uidOf('AIDADAVE0002'));
  });

  test('a failed refresh keeps the last good state, up to maxStaleMs; then the entries expire (fail closed)', async () => {
    const { iam, source, advance } = await withUsers();
    iam.failing = new Error('IAM unreachable');
    advance(300_000);
    let report = await source.refresh();
    expect(report.failed).toHaveLength(4);
    expect(report.revoked).toEqual([]);
    expect(source.knownUsers()).toHaveLength(4);
    advance(300_000);
    await source.refresh();
    expect(await source.lookupUser('alice')).toBeDefined();
    advance(300_000); // 900 s since the last successful check
    expect(await source.userByUid(uidOf(iam.users.get('alice')!.userId))).toBeUndefined();
    report = await source.refresh();
    expect(report.expired.sort()).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(report.groupsRemoved).toEqual(['devs']);
    expect(source.knownUsers()).toEqual([]);
  });

  test('a partial refresh: the failed user is kept, the others are re-verified', async () => {
    const { iam, source, advance } = await withUsers();
    // bob's checks fail; the rest succeed.
    const realUser = iam.user.bind(iam);
    iam.user = async (name: string) => {
      if (name === 'bob') {
        iam.calls.user++;
        throw new Error('throttled');
      }
      return realUser(name);
    };
    advance(600_000);
    const report = await source.refresh();
    expect(report.failed.map((f) => f.name)).toEqual(['bob']);
    expect(report.unchanged).toBe(3);
    advance(300_000);
    await source.refresh();
    expect(
      source
        .knownUsers()
        .map((u) => u.linuxName)
        .sort(),
    ).toEqual(['alice', 'carol', 'dave']);
    expect(await source.group('devs')).toMatchObject({ members: ['alice'] });
  });

  test('concurrent refresh() calls share one run; concurrency is bounded', async () => {
    const ctx = setup({ refreshConcurrency: 2 });
    for (let i = 0; i < 10; i++) ctx.iam.add(`u${i}`);
    for (let i = 0; i < 10; i++) await ctx.source.lookupUser(`u${i}`);
    let active = 0;
    let peak = 0;
    const realUser = ctx.iam.user.bind(ctx.iam);
    ctx.iam.user = async (name: string) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
      return realUser(name);
    };
    const [a, b] = await Promise.all([ctx.source.refresh(), ctx.source.refresh()]);
    expect(a).toBe(b);
    expect(a.checked).toBe(10);
    expect(peak).toBe(2);
  });
});
