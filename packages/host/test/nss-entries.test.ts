// One parser for passwd and group lines: exactly the format, or no entry at all.
import { expect } from '@jest/globals';
import { parseGroupLine, parsePasswdLine } from '../src/system/nss-entries';

test('a passwd line is read field by field', () => {
  expect(parsePasswdLine('alice:x:1001:1001:Alice A:/home/alice:/bin/bash')).toEqual({
    name: 'alice',
    uid: 1001,
    gid: 1001,
    gecos: 'Alice A',
    home: '/home/alice',
    shell: '/bin/bash',
  });
});

test.each([
  ['too few fields', 'alice:x:1001:1001:/home/alice:/bin/bash'],
  ['too many fields', 'alice:x:1001:1001::/home/alice:/bin/bash:extra'],
  ['a non-numeric uid', 'alice:x:10a1:1001::/home/alice:/bin/bash'],
  ['a negative gid', 'alice:x:1001:-1::/home/alice:/bin/bash'],
  ['no name', ':x:1001:1001::/home/alice:/bin/bash'],
  ['a blank line', ''],
])('a passwd line with %s is no entry', (_what, line) => {
  expect(parsePasswdLine(line)).toBeUndefined();
});

test('a group line: members split on commas, an empty list is none', () => {
  expect(parseGroupLine('devs:x:2001:alice,bob')).toEqual({ name: 'devs', gid: 2001, members: ['alice', 'bob'] });
  expect(parseGroupLine('devs:x:2001:')).toEqual({ name: 'devs', gid: 2001, members: [] });
  expect(parseGroupLine('devs:x:2001')).toBeUndefined();
  expect(parseGroupLine('devs:x:abc:alice')).toBeUndefined();
});
