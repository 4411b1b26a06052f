import {
  assertLinuxUserName,
  isInManagedRange,
  linuxUserNameForIamUser,
  parseRoleArn,
  unixIdFor,
  InputError,
} from '@keymaker/core';
import { iamUserNameForLinuxUser, linuxGroupNameForIamGroup } from '../src/names';
import { parseCallerArn } from '../src/resolve';
import { collisionProbability, legacyUnixId, UID_RANGES } from '../src/uid';

describe('Linux and IAM names', () => {
  it.each(['alice', 'john.doe', '_svc', 'a-b_c1', 'x'.repeat(32)])('accepts %j', (name) => {
    expect(assertLinuxUserName(name)).toBe(name);
  });

  it.each([
    '',
    'root ',
    '-rf',
    '../x',
    'a b',
    'Alice',
    'аlice' /* Cyrillic a */,
    'x'.repeat(33),
    'a@b',
    'a+b',
    'a=b',
    'a,b',
    'a.',
    'a\nb',
  ])('refuses %j before any call', (name) => {
    expect(() => assertLinuxUserName(name)).toThrow(InputError);
  });

  it('maps Linux names to IAM names with the suffix and back', () => {
    expect(iamUserNameForLinuxUser('alice', '@example.com')).toBe('alice@example.com');
    expect(linuxUserNameForIamUser('alice@example.com', '@example.com')).toBe('alice');
    expect(linuxUserNameForIamUser('bob', '@example.com')).toBeUndefined();
    // An empty suffix trims nothing (keymaker 1.0.7).
    expect(linuxUserNameForIamUser('carol', '')).toBe('carol');
    // IAM allows names Linux does not.
    expect(linuxUserNameForIamUser('carol+ops', '')).toBeUndefined();
    // IAM names are case-insensitive: Carol.Smith is the user the lookup serves as carol.smith (issue 13 point 10).
    expect(linuxUserNameForIamUser('Carol.Smith', '')).toBe('carol.smith');
  });

  it('refuses a Linux name whose IAM name would exceed 64 characters', () => {
    expect(() => iamUserNameForLinuxUser('a'.repeat(30), '@' + 'x'.repeat(40))).toThrow(/longer than 64/);
  });

  it('strips the group prefix and skips other groups', () => {
    expect(linuxGroupNameForIamGroup('keymaker_devs', 'keymaker_')).toBe('devs');
    expect(linuxGroupNameForIamGroup('admins', 'keymaker_')).toBeUndefined();
    expect(linuxGroupNameForIamGroup('keymaker_Bad Name', 'keymaker_')).toBeUndefined();
  });

  it('parses role and caller ARNs', () => {
    expect(parseRoleArn('arn:aws:iam::123456789012:role/path/web')).toEqual({
      accountId: '123456789012',
      roleName: 'web',
      partition: 'aws',
    });
    expect(parseRoleArn('arn:aws:iam::12345:role/web')).toBeUndefined();
    expect(parseCallerArn('arn:aws:sts::123456789012:assumed-role/web/i-0abc')).toMatchObject({
      kind: 'assumed-role',
      name: 'web',
    });
    expect(parseCallerArn('arn:aws:iam::123456789012:user/ops/alice')).toMatchObject({ kind: 'user', name: 'alice' });
  });
});

describe('UID/GID derivation', () => {
  it('legacy is bit-identical to keymaker 1.x', () => {
    expect(legacyUnixId('AKIAIJLRCB5E7CGTDF5A')).toBe(26594);
    expect(unixIdFor('AKIAIJLRCB5E7CGTDF5A', 'legacy')).toBe(26594);
  });

  it('wide stays inside its documented range and is deterministic', () => {
    for (let i = 0; i < 2000; i++) {
      const id = `AIDA${i.toString(36).toUpperCase().padStart(17, 'X')}`;
      const uid = unixIdFor(id, 'wide');
      expect(isInManagedRange(uid, 'wide')).toBe(true);
      expect(uid).toBeLessThan(2 ** 31);
      expect(unixIdFor(id, 'wide')).toBe(uid);
    }
    expect(UID_RANGES.wide.min).toBeGreaterThan(65535);
  });

  it('wide has far fewer collisions than legacy', () => {
    const wideSize = UID_RANGES.wide.max - UID_RANGES.wide.min + 1;
    expect(collisionProbability(1000, wideSize)).toBeLessThan(0.002);
    expect(collisionProbability(10000, wideSize)).toBeLessThan(0.18);
    expect(collisionProbability(1000, 32768)).toBeGreaterThan(0.99);
    const ids = Array.from({ length: 1000 }, (_, i) => `AIDAEXAMPLE${i}`);
    expect(new Set(ids.map((id) => unixIdFor(id, 'wide'))).size).toBe(1000);
  });
});
