// Files the root-run hook and sync (and the lookup) read must be changeable by root only.
import {
  assertTrustedFile,
  directoriesAbove,
  isRootOwned,
  rootOwnedProblem,
  runtimeTrustedFiles,
  type PathStat,
} from '../src/system/root-owned';

const dir = (uid = 0, mode = 0o755): PathStat => ({ isFile: false, isDirectory: true, isSymlink: false, uid, mode });
const file = (uid = 0, mode = 0o644): PathStat => ({ isFile: true, isDirectory: false, isSymlink: false, uid, mode });

function fs(entries: Record<string, PathStat>) {
  return async (p: string) => entries[p];
}
const CONFIG = { path: '/etc/keymaker/config.json', fixOwner: 'root:root', fixMode: '644' };
const base = { '/': dir(), '/etc': dir(), '/etc/keymaker': dir() };

test('a root-owned 0644 config in root-owned directories is read; a missing one passes (defaults)', async () => {
  await expect(assertTrustedFile(CONFIG, fs({ ...base, [CONFIG.path]: file() }))).resolves.toBeUndefined();
  await expect(assertTrustedFile(CONFIG, fs(base))).resolves.toBeUndefined();
});

test.each([
  ['group-writable', file(0, 0o664), 'it is group-writable'],
  ['world-writable', file(0, 0o646), 'it is world-writable'],
  ['owned by another user', file(1000, 0o644), 'it is owned by uid 1000, not root'],
])('a %s config is refused, naming the file and the fix', async (_what, st, problem) => {
  const error = await assertTrustedFile(CONFIG, fs({ ...base, [CONFIG.path]: st })).then(
    () => {
      throw new Error('not refused');
    },
    (e: Error) => e,
  );
  expect(error).toMatchObject({ code: 'UNSAFE_PATH' });
  expect(error.message).toBe(
    `refusing to read /etc/keymaker/config.json: ${problem}, so another user could change who logs in; fix: chown root:root /etc/keymaker/config.json && chmod 644 /etc/keymaker/config.json`,
  );
});

test('a writable parent directory is refused (the file could be replaced)', async () => {
  const error = await assertTrustedFile(
    CONFIG,
    fs({ ...base, '/etc/keymaker': dir(0, 0o777), [CONFIG.path]: file() }),
  ).then(
    () => {
      throw new Error('not refused');
    },
    (e: Error) => e,
  );
  expect(error.message).toContain('its directory /etc/keymaker is world-writable');
  expect(error.message).toContain('chmod go-w /etc/keymaker');
});

test('not a regular file is refused', async () => {
  await expect(assertTrustedFile(CONFIG, fs({ ...base, [CONFIG.path]: dir() }))).rejects.toMatchObject({
    code: 'UNSAFE_PATH',
  });
});

test('credentials are checked with their own fix (root:LOOKUPUSER 640)', () => {
  expect(
    runtimeTrustedFiles(
      '/etc/keymaker/config.json',
      { sharedCredentialsFile: '/etc/keymaker/credentials' },
      'keymaker',
    ),
  ).toEqual([CONFIG, { path: '/etc/keymaker/credentials', fixOwner: 'root:keymaker', fixMode: '640' }]);
});

describe('the one rule (rootOwnedProblem) under every check', () => {
  test('root-owned and not group/world-writable passes; each breach is named', () => {
    expect(rootOwnedProblem({ uid: 0, mode: 0o755 })).toBeUndefined();
    expect(rootOwnedProblem({ uid: 0, mode: 0o1755 })).toBeUndefined();
    expect(rootOwnedProblem({ uid: 1000, mode: 0o755 })).toEqual({ kind: 'owner', uid: 1000 });
    expect(rootOwnedProblem({ uid: 0, mode: 0o775 })).toEqual({ kind: 'group-writable' });
    expect(rootOwnedProblem({ uid: 0, mode: 0o777 })).toEqual({ kind: 'world-writable' });
    expect(isRootOwned({ uid: 0, mode: 0o40755 })).toBe(true);
    expect(isRootOwned({ uid: 0, mode: 0o40775 })).toBe(false);
  });
  test('directoriesAbove lists every directory up to /', () => {
    expect(directoriesAbove('/etc/keymaker/config.json')).toEqual(['/etc/keymaker', '/etc', '/']);
  });
  test('a group-writable parent is refused by the runtime check', async () => {
    await expect(
      assertTrustedFile(CONFIG, fs({ ...base, '/etc': dir(0, 0o775), [CONFIG.path]: file() })),
    ).rejects.toThrow('its directory /etc is group-writable');
  });
  test('a symlink to a root-owned file is followed and its real path checked in full', async () => {
    const link = { isFile: false, isDirectory: false, isSymlink: true, uid: 0, mode: 0o777 };
    // The link's own real path does not exist on this machine: a dangling link is refused.
    await expect(
      assertTrustedFile(
        { ...CONFIG, path: '/nonexistent-keymaker/config.json' },
        fs({ ...base, '/nonexistent-keymaker/config.json': link }),
      ),
    ).rejects.toThrow('is a dangling symlink');
  });
});
