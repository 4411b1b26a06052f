import { expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  efsHomeProblem,
  parseEfsHome,
  parseRoleDescription,
  ROLE_CONFIG_TOKENS,
  serializeRoleConfig,
} from '../src/role-config';

// keymaker_efs_home=FS_ID[:/PATH] (issue 15): the fleet's shared home directories, from the role.

test('keymaker_efs_home takes a file system ID, with or without a path', () => {
  expect(parseRoleDescription('Web. keymaker_efs_home=fs-0123456789abcdef0')).toEqual({
    efsHome: 'fs-0123456789abcdef0',
  });
  expect(parseRoleDescription("keymaker_efs_home='fs-01234567:/homes/web', keymaker_uid_scheme=wide")).toEqual({
    efsHome: 'fs-01234567:/homes/web',
    uidScheme: 'wide',
  });
  expect(serializeRoleConfig({ efsHome: 'fs-01234567:/homes' })).toBe('keymaker_efs_home=fs-01234567:/homes');
  expect(parseEfsHome('fs-01234567')).toEqual({ fileSystemId: 'fs-01234567', path: '/' });
  expect(parseEfsHome('fs-0123456789abcdef0:/')).toEqual({ fileSystemId: 'fs-0123456789abcdef0', path: '/' });
  expect(parseEfsHome('fs-01234567:/a/b.c')).toEqual({ fileSystemId: 'fs-01234567', path: '/a/b.c' });
});

test.each([
  ['keymaker_efs_home=fs-123', /8 to 17 lower-case hex digits/],
  ['keymaker_efs_home=fs-0123456789ABCDEF0', /lower-case hex/],
  ['keymaker_efs_home=fs-0123456789abcdef012', /8 to 17/],
  ['keymaker_efs_home=0123456789abcdef0', /fs-/],
  ['keymaker_efs_home=fs-01234567:homes', /must be absolute/],
  ['keymaker_efs_home=fs-01234567:/homes/', /normalized/],
  ['keymaker_efs_home=fs-01234567:/a//b', /normalized/],
  ['keymaker_efs_home=fs-01234567:/a/../b', /normalized/],
  ['keymaker_efs_home=fs-01234567:/a/./b', /normalized/],
  ['keymaker_efs_home=fs-01234567:', /must be absolute/],
  ['keymaker_efs_home=fs-01234567:/a;b', /may contain only/],
  ['keymaker_efs_home=fs-01234567 keymaker_efs_home=fs-89abcdef', /given twice with different values/],
  ['keymaker_efs_home = fs-01234567', /keymaker_efs_home=fs-01234567/],
  ['Keymaker_EFS_Home=fs-01234567', /keymaker_efs_home/],
])('%s is refused: %s', (description, message) => {
  expect(() => parseRoleDescription(description)).toThrow(message);
});

test('efsHomeProblem accepts what parseEfsHome parses, and parseEfsHome throws what it refuses', () => {
  expect(efsHomeProblem('fs-01234567:/x')).toBeUndefined();
  expect(() => parseEfsHome('fs-1:/x')).toThrow(/invalid EFS home "fs-1:\/x"/);
});

test("the README's token table lists exactly the tokens core knows, in its order", () => {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const start = readme.indexOf('| token | meaning | default |');
  expect(start).toBeGreaterThan(0);
  const rows = readme
    .slice(start)
    .split('\n')
    .slice(2)
    .filter((line, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('|')));
  const listed = rows.map((row) => /^\| `(keymaker_[a-z_]+)=/.exec(row)?.[1]);
  expect(listed).toEqual(ROLE_CONFIG_TOKENS.map(([token]) => token));
});
