import { applyRoleConfigToDescription, parseRoleDescription, resolveRoleConfig, RoleConfigError } from '@keymaker/core';
import { serializeRoleConfig } from '../src/role-config';

describe('parseRoleDescription', () => {
  it('reads the tokens of keymaker 1.x separated by commas and spaces, amid free text', () => {
    const config = parseRoleDescription(
      'Web servers. keymaker_id_resolver_account=123456789012, keymaker_id_resolver_iam_role=id_resolver,keymaker_require_iam_group=prod_ssh_users  owned by ops',
    );
    expect(config).toEqual({
      idResolverAccount: '123456789012',
      idResolverIamRole: 'id_resolver',
      requireIamGroup: 'prod_ssh_users',
    });
  });

  it('accepts single- and double-quoted values', () => {
    expect(parseRoleDescription(`keymaker_linux_user_suffix='@example.com' keymaker_linux_group_prefix="km-"`)).toEqual(
      {
        linuxUserSuffix: '@example.com',
        linuxGroupPrefix: 'km-',
      },
    );
  });

  it('returns an empty config for a description without tokens or no description', () => {
    expect(parseRoleDescription('just a role')).toEqual({});
    expect(parseRoleDescription(undefined)).toEqual({});
    expect(parseRoleDescription('managed by keymaker, see the keymaker docs')).toEqual({});
  });

  it('refuses a token name without "=" (a near miss, no longer free text: issue 13 point 3)', () => {
    expect(() => parseRoleDescription('mentions keymaker_require_iam_group without a value')).toThrow(RoleConfigError);
  });

  it.each([
    ['keymaker_id_resolver_account=12345 keymaker_id_resolver_iam_role=r', /12 digits/],
    ['keymaker_require_iam_group=bad/group', /not a valid IAM group name/],
    ['keymaker_uid_scheme=random', /known schemes: wide, legacy/],
    ['keymaker_linux_group_prefix=', /empty prefix/],
    ['keymaker_linux_user_suffix=a/b', /suffix may contain only/],
    ['keymaker_frobnicate=1', /unknown token keymaker_frobnicate/],
    ['keymaker_id_resolver_account=123456789012', /must be given together/],
    ['keymaker_require_iam_group=a keymaker_require_iam_group=b', /given twice with different values/],
    ['keymaker_require_iam_group="unbalanced', /no closing one/],
  ])('refuses %j with a reported error', (description, message) => {
    expect(() => parseRoleDescription(description)).toThrow(RoleConfigError);
    expect(() => parseRoleDescription(description)).toThrow(message);
  });

  it('accepts a token repeated with the same value', () => {
    expect(parseRoleDescription('keymaker_require_iam_group=a, keymaker_require_iam_group=a')).toEqual({
      requireIamGroup: 'a',
    });
  });

  it('fills defaults when resolved', () => {
    expect(resolveRoleConfig({})).toEqual({ linuxUserSuffix: '', linuxGroupPrefix: 'keymaker_', uidScheme: 'wide' });
  });
});

describe('serializeRoleConfig / applyRoleConfigToDescription', () => {
  it('round-trips through the parser', () => {
    const config = {
      idResolverAccount: '210987654321',
      idResolverIamRole: 'KeymakerIdResolver',
      linuxUserSuffix: ',odd',
      uidScheme: 'legacy' as const,
    };
    expect(parseRoleDescription(serializeRoleConfig(config))).toEqual(config);
  });

  it('replaces keymaker tokens and keeps the other text', () => {
    const next = applyRoleConfigToDescription('Prod web. keymaker_require_iam_group=old, owner=ops', {
      requireIamGroup: 'new',
    });
    expect(next).toBe('Prod web. owner=ops keymaker_require_iam_group=new');
    expect(parseRoleDescription(next)).toEqual({ requireIamGroup: 'new' });
  });

  it('refuses a result beyond IAM 1000-character limit', () => {
    expect(() => applyRoleConfigToDescription('x'.repeat(990), { requireIamGroup: 'group' })).toThrow(
      /over IAM's limit of 1000/,
    );
  });
});
