import fc from 'fast-check';
import {
  applyRoleConfigToDescription,
  isValidLinuxName,
  linuxUserNameForIamUser,
  parseRoleDescription,
  unixIdFor,
  type RoleConfig,
} from '@keymaker/core';
import { iamUserNameForLinuxUser } from '../src/names';
import { serializeRoleConfig } from '../src/role-config';
import { legacyUnixId, UID_RANGES } from '../src/uid';

const iamChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-'.split(''));
const iamName = (max: number) => fc.array(iamChars, { minLength: 1, maxLength: max }).map((chars) => chars.join(''));
const linuxName = fc
  .tuple(
    fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_'.split('')),
    fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789_-'.split('')), { maxLength: 20 }),
  )
  .map(([first, rest]) => first + rest.join(''));

const roleConfig: fc.Arbitrary<RoleConfig> = fc
  .record(
    {
      idResolverAccount: fc.stringMatching(/^\d{12}$/),
      idResolverIamRole: iamName(64),
      requireIamGroup: iamName(128),
      linuxUserSuffix: fc.oneof(fc.constant(''), iamName(20)),
      linuxGroupPrefix: iamName(20).filter((p) => !p.includes(',')),
      uidScheme: fc.constantFrom('wide' as const, 'legacy' as const),
    },
    { requiredKeys: [] },
  )
  .filter((c) => (c.idResolverAccount === undefined) === (c.idResolverIamRole === undefined));

// Free text that cannot itself look like a keymaker token.
const freeText = fc.string({ maxLength: 60 }).map((text) => text.replace(/keymaker_/gi, 'km').replace(/['"]/g, ''));

describe('properties', () => {
  it('role config: serialise then parse gives the same config', () => {
    fc.assert(
      fc.property(roleConfig, (config) => expect(parseRoleDescription(serializeRoleConfig(config))).toEqual(config)),
    );
  });

  it('role config: writing into a description keeps the config readable and the other words', () => {
    fc.assert(
      fc.property(freeText, roleConfig, roleConfig, (text, first, second) => {
        const once = applyRoleConfigToDescription(text, first);
        const twice = applyRoleConfigToDescription(once, second);
        expect(parseRoleDescription(twice)).toEqual(second);
        // The tokens go at the end; everything before them is the original text's words.
        const tokens = serializeRoleConfig(second);
        expect(twice.endsWith(tokens)).toBe(true);
        const words = (s: string) => s.split(/[\s,]+/).filter(Boolean);
        expect(words(twice.slice(0, twice.length - tokens.length))).toEqual(words(text));
      }),
    );
  });

  it('role config: any text either parses or throws a RoleConfigError, never anything else', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        try {
          parseRoleDescription(`keymaker_${text}`);
        } catch (error) {
          expect((error as Error).name).toBe('RoleConfigError');
        }
      }),
    );
  });

  it('names: Linux -> IAM -> Linux is the identity for every suffix', () => {
    fc.assert(
      fc.property(linuxName, fc.oneof(fc.constant(''), iamName(20)), (name, suffix) => {
        fc.pre(isValidLinuxName(name));
        const iam = iamUserNameForLinuxUser(name, suffix);
        expect(linuxUserNameForIamUser(iam, suffix)).toBe(name);
      }),
    );
  });

  it('UIDs: always inside the documented range and deterministic', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 128 }),
        fc.constantFrom('wide' as const, 'legacy' as const),
        (id, scheme) => {
          const uid = unixIdFor(id, scheme);
          expect(Number.isInteger(uid)).toBe(true);
          expect(uid).toBeGreaterThanOrEqual(UID_RANGES[scheme].min);
          expect(uid).toBeLessThanOrEqual(UID_RANGES[scheme].max);
          expect(unixIdFor(id, scheme)).toBe(uid);
        },
      ),
    );
  });

  it('UIDs: legacy vectors are exact', () => {
    expect(legacyUnixId('AKIAIJLRCB5E7CGTDF5A')).toBe(26594);
  });
});
