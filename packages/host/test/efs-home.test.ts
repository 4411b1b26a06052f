// Safe home creation on the EFS share (issue 15), against an in-memory share: which homes are accepted,
// which refused, who makes a new one (the user; root only where it is not squashed), races and UID collisions.
import { EXIT_CODES, isKeymakerError } from '@keymaker/core';
import { pamEfsHomeCommand } from '../src/commands/host-commands';
import { createMemorySyslog } from '../src/system/syslog';
import { assertShareMounted, ensureEfsHome, type CreateOutcome, type EfsHomeIo } from '../src/accounts/efs-home';
import type { PathInfo } from '../src/system/host-system';
import { ShadowUtilsAdmin } from '../src/accounts/local-accounts';

const BASE = '/home/keymaker';
const alice = { name: 'alice', uid: 2_000_001, gid: 2_000_001, home: `${BASE}/alice` };

interface Share {
  mounted: boolean;
  /** Users may create in the base (mode 1777). */
  usersWrite: boolean;
  rootSquash: boolean;
  entries: Map<string, PathInfo>;
  calls: string[];
  /** Another host's mkdir lands just before ours. */
  raceOwner?: number;
}

function share(over: Partial<Share> = {}): Share & { io: EfsHomeIo } {
  const s: Share = { mounted: true, usersWrite: true, rootSquash: false, entries: new Map(), calls: [], ...over };
  const dir = (uid: number): PathInfo => ({ type: 'dir', mode: 0o700, uid, gid: uid, dev: 2 });
  const mkdir = (home: string, uid: number): CreateOutcome => {
    if (s.raceOwner !== undefined) {
      s.entries.set(home, dir(s.raceOwner));
      s.raceOwner = undefined;
    }
    if (s.entries.has(home)) return { result: 'exists' };
    s.entries.set(home, dir(uid));
    return { result: 'created' };
  };
  const io: EfsHomeIo = {
    stat: (p) =>
      p === BASE
        ? { type: 'dir', mode: 0o1777, uid: 0, gid: 0, dev: s.mounted ? 2 : 1 }
        : p === '/home'
          ? { type: 'dir', mode: 0o755, uid: 0, gid: 0, dev: 1 }
          : s.entries.get(p),
    lstat: (p) => s.entries.get(p),
    readdir: (p) => (p === BASE ? [...s.entries.keys()].map((k) => k.slice(BASE.length + 1)) : undefined),
    createAsUser(home, uid) {
      s.calls.push(`user-mkdir ${uid}`);
      if (!s.usersWrite) return { result: 'denied', detail: 'EACCES' };
      const r = mkdir(home, uid);
      if (r.result === 'created') s.calls.push('user-skel');
      return r;
    },
    mkdirAsRoot(home) {
      s.calls.push('root-mkdir');
      // Squashed root is "others": it may write the base only if users may.
      if (s.rootSquash && !s.usersWrite) return { result: 'denied', detail: 'EACCES' };
      return mkdir(home, s.rootSquash ? 65534 : 0);
    },
    chown(p, uid, gid) {
      s.calls.push(`chown ${p} ${uid}`);
      s.entries.set(p, { ...s.entries.get(p)!, uid, gid });
    },
    rmdir(p) {
      s.calls.push(`rmdir ${p}`);
      s.entries.delete(p);
    },
    copySkeletonAsUser(_home, uid) {
      s.calls.push(`skel-as ${uid}`);
      return undefined;
    },
  };
  return Object.assign(s, { io });
}

function refusal(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    if (isKeymakerError(error) && error.code === 'EFS_HOME_REFUSED') return error.message;
    throw error;
  }
  throw new Error('not refused');
}

describe('ensureEfsHome', () => {
  test('first login: one mkdir as the user, who copies the skeleton; nothing as root', () => {
    const s = share();
    expect(ensureEfsHome(s.io, alice, { base: BASE })).toEqual({ kind: 'created', by: 'user' });
    expect(s.entries.get(alice.home)).toMatchObject({ type: 'dir', uid: alice.uid });
    expect(s.calls).toEqual([`user-mkdir ${alice.uid}`, 'user-skel']);
  });

  test('her existing home (another host made it): accepted, nothing made, no skeleton', () => {
    const s = share();
    s.entries.set(alice.home, { type: 'dir', mode: 0o700, uid: alice.uid, gid: alice.gid });
    expect(ensureEfsHome(s.io, alice, { base: BASE })).toEqual({ kind: 'exists' });
    expect(s.calls).toEqual([]);
  });

  test('a symlink, a file, or a directory of another uid: refused, never changed', () => {
    for (const info of [
      { type: 'symlink' as const, uid: alice.uid },
      { type: 'file' as const, uid: alice.uid },
      { type: 'dir' as const, uid: 4242 },
    ]) {
      const s = share();
      s.entries.set(alice.home, { ...info, mode: 0o777, gid: 0 });
      expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(
        info.type === 'symlink' ? /is a symlink/ : info.type === 'file' ? /not a directory/ : /owned by uid 4242/,
      );
      expect(s.calls).toEqual([]);
      expect(s.entries.get(alice.home)?.uid).toBe(info.uid);
    }
  });

  test('share not mounted: refused before anything is looked at or made', () => {
    const s = share({ mounted: false });
    expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(/not mounted on \/home\/keymaker/);
    expect(refusal(() => assertShareMounted(s.io, BASE))).toMatch(/managed logins are refused/);
    expect(s.calls).toEqual([]);
    expect(s.entries.size).toBe(0);
  });

  test("a local account (home elsewhere) is not the share's business, mounted or not", () => {
    const s = share({ mounted: false });
    expect(ensureEfsHome(s.io, { ...alice, home: '/home/alice' }, { base: BASE })).toEqual({ kind: 'not-on-share' });
    expect(ensureEfsHome(s.io, { ...alice, home: `${BASE}/x/alice` }, { base: BASE })).toEqual({
      kind: 'not-on-share',
    });
  });

  test("two hosts at once: the loser gets EEXIST and accepts the winner's home after the same checks", () => {
    const s = share({ raceOwner: alice.uid });
    expect(ensureEfsHome(s.io, alice, { base: BASE })).toEqual({ kind: 'exists' });
    expect(s.calls).toEqual([`user-mkdir ${alice.uid}`]);
    const hostile = share({ raceOwner: 4242 });
    expect(refusal(() => ensureEfsHome(hostile.io, alice, { base: BASE }))).toMatch(/owned by uid 4242/);
  });

  test('users cannot write the base, no root squash: root makes it, one chown of that directory, skeleton as her', () => {
    const s = share({ usersWrite: false });
    expect(ensureEfsHome(s.io, alice, { base: BASE })).toEqual({ kind: 'created', by: 'root' });
    expect(s.calls).toEqual([
      `user-mkdir ${alice.uid}`,
      'root-mkdir',
      `chown ${alice.home} ${alice.uid}`,
      `skel-as ${alice.uid}`,
    ]);
  });

  test('root squash and a base users cannot write: refused with the fix, no home owned by nobody left', () => {
    const s = share({ usersWrite: false, rootSquash: true });
    expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(/mode 1777/);
    expect(s.entries.size).toBe(0);
  });

  test("root squash: root's mkdir that made a nobody-owned directory is taken back, and refused", () => {
    const s = share({ usersWrite: false, rootSquash: true });
    s.io.mkdirAsRoot = (home) => {
      s.entries.set(home, { type: 'dir', mode: 0o700, uid: 65534, gid: 65534 });
      return { result: 'created' };
    };
    expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(/root is squashed/);
    expect(s.calls).toContain(`rmdir ${alice.home}`);
    expect(s.entries.has(alice.home)).toBe(false);
  });

  test('a second IAM user whose derived UID owns another home on the share: refused, no home made', () => {
    const s = share();
    s.entries.set(`${BASE}/bob`, { type: 'dir', mode: 0o700, uid: alice.uid, gid: alice.gid });
    expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(
      /uid 2000001 of alice already owns \/home\/keymaker\/bob/,
    );
    expect(s.entries.has(alice.home)).toBe(false);
    expect(s.calls).toEqual([]);
  });

  test('a base that cannot be listed: refused (the collision check cannot be made)', () => {
    const s = share();
    s.io.readdir = () => undefined;
    expect(refusal(() => ensureEfsHome(s.io, alice, { base: BASE }))).toMatch(/cannot list/);
  });
});

test('useradd: BASE/NAME and no home of its own when homes live on EFS; --create-home otherwise', async () => {
  const argvs: string[][] = [];
  const sys = {
    run: async (argv: string[]) => (argvs.push(argv), { code: 0, stdout: '', stderr: '' }),
    readFile: async () => undefined,
  };
  const account = { name: 'bob', uid: 7, gid: 7, privateGroup: 'create' as const, comment: 'c', groups: [] };
  await new ShadowUtilsAdmin(sys, { efsHomeBase: BASE }).addUser(account);
  await new ShadowUtilsAdmin(sys).addUser(account);
  expect(argvs[0]).toEqual(expect.arrayContaining(['--home-dir', `${BASE}/bob`, '--no-create-home']));
  expect(argvs[0]).not.toContain('--create-home');
  expect(argvs[1]).toContain('--create-home');
  expect(argvs[1]).not.toContain('--home-dir');
});

describe('pam_efs_home (the session hook command)', () => {
  const entry = (name: string, home: string) => ({
    name,
    uid: 2_000_001,
    gid: 2_000_001,
    gecos: '',
    home,
    shell: '/bin/sh',
  });
  const accounts = (home: string) => ({
    user: async (name: string) => entry(name, home),
    userByUid: async () => undefined,
    group: async () => undefined,
    groupByGid: async () => undefined,
    users: async () => [],
    groups: async () => [],
  });
  const env = (configText: string | undefined, home: string, io?: EfsHomeIo) => ({
    sys: { run: async () => ({ code: 1, stdout: '', stderr: '' }), readFile: async () => configText },
    accounts: accounts(home),
    syslog: createMemorySyslog(),
    statPath: async () => undefined,
    stderr: () => undefined,
    uid: 0,
    efsHomeIo: io,
  });
  const pam = (user: string, type = 'open_session') => ({ PAM_USER: user, PAM_TYPE: type });
  const exitCode = async (pamEnv: NodeJS.ProcessEnv, e: ReturnType<typeof env>) =>
    (await pamEfsHomeCommand(pamEnv, e)).exitCode;

  test('a host config that cannot be read refuses a home on the share, never a local account', async () => {
    // The refusal is the config's error, for the boundary to say and map (INVALID_ARGUMENT); root passes, told why.
    await expect(pamEfsHomeCommand(pam('alice'), env('{ broken', `${BASE}/alice`))).rejects.toMatchObject({
      exitCode: EXIT_CODES.INVALID_ARGUMENT,
    });
    expect(await pamEfsHomeCommand(pam('root'), env('{ broken', '/root'))).toEqual({
      exitCode: 0,
      stderr: [expect.stringMatching(/^keymaker: .*not valid JSON/)],
    });
  });

  test('only open_session, only with efsHome configured, only for homes below the base', async () => {
    const config = JSON.stringify({ version: 1, efsHome: 'fs-01234567' });
    const unmounted = share({ mounted: false });
    expect(await exitCode(pam('alice', 'close_session'), env(config, `${BASE}/alice`, unmounted.io))).toBe(0);
    expect(await exitCode(pam('alice'), env(JSON.stringify({ version: 1 }), `${BASE}/alice`, unmounted.io))).toBe(0);
    expect(await exitCode(pam('carol'), env(config, '/home/carol', unmounted.io))).toBe(0);
    const refused = env(config, `${BASE}/alice`, unmounted.io);
    expect(await exitCode(pam('alice'), refused)).toBe(EXIT_CODES.EFS_HOME_REFUSED);
    expect(refused.syslog.lines.map((l) => l.message).join('\n')).toMatch(
      /efs_home user="alice" .*decision=refused reason=EFS_HOME_REFUSED/,
    );
    const mounted = share();
    const made = env(config, `${BASE}/alice`, mounted.io);
    expect(await exitCode(pam('alice'), made)).toBe(0);
    expect(made.syslog.lines.map((l) => l.message).join('\n')).toMatch(
      /decision=created home=\/home\/keymaker\/alice .*by=user/,
    );
  });
});
