import { applyRoleConfigToDescription, formatError, isKeymakerError, parseRoleDescription } from '@keymaker/core';

// Issue 13, point 3: a token that is almost right must not silently become free
// text (the required group would disappear). Every near miss is an error that
// names the offending text and says how to write it.

function errorOf(description: string): unknown {
  try {
    parseRoleDescription(description);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('mistyped role-description tokens fail closed', () => {
  it.each([
    ['spaces around =', 'keymaker_require_iam_group = ssh-users', 'keymaker_require_iam_group = ssh-users'],
    ['space before =', 'Ops. keymaker_require_iam_group =ssh-users', 'keymaker_require_iam_group =ssh-users'],
    ['colon for =', 'keymaker_require_iam_group: ssh-users', 'keymaker_require_iam_group: ssh-users'],
    ['no = at all', 'keymaker_require_iam_group ssh-users', 'keymaker_require_iam_group'],
    ['capitalised', 'Keymaker_require_iam_group=ssh-users', 'Keymaker_require_iam_group=ssh-users'],
    ['upper case', 'KEYMAKER_REQUIRE_IAM_GROUP=ssh-users', 'KEYMAKER_REQUIRE_IAM_GROUP=ssh-users'],
    ['in parentheses', 'Web (keymaker_require_iam_group=ssh-users)', '(keymaker_require_iam_group=ssh-users)'],
    ['glued to a label', 'note:keymaker_require_iam_group=ssh-users', 'note:keymaker_require_iam_group=ssh-users'],
    ['hyphens', 'keymaker-require-iam-group=ssh-users', 'keymaker-require-iam-group=ssh-users'],
    ['words', 'keymaker require iam group = ssh-users', 'keymaker require iam group = ssh-users'],
    ['camel case', 'KeymakerRequireIamGroup=ssh-users', 'KeymakerRequireIamGroup=ssh-users'],
    ['dot', 'keymaker.require_iam_group=ssh-users', 'keymaker.require_iam_group=ssh-users'],
    ['text after a closing quote', 'keymaker_require_iam_group="ssh-users"x', 'keymaker_require_iam_group'],
  ])('%s: %j is an error naming the text and the fix', (_label, description, offending) => {
    const error = errorOf(description);
    expect(isKeymakerError(error, 'INVALID_ROLE_CONFIG')).toBe(true);
    const line = formatError(error);
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain(JSON.stringify(offending).slice(1, -1));
    expect(line).toContain('keymaker_require_iam_group=');
  });

  it('a well-formed token next to a mistyped one does not rescue the description', () => {
    expect(() => parseRoleDescription('keymaker_uid_scheme=legacy, Keymaker_require_iam_group=ssh-users')).toThrow(
      /Keymaker_require_iam_group=ssh-users/,
    );
  });

  it('an unknown near-miss still gets the generic fix', () => {
    expect(() => parseRoleDescription('KEYMAKER_frobnicate=1')).toThrow(/keymaker_<name>=<value>/);
  });

  it('keeps the well-formed forms: separators, free text, quotes, and values that contain "keymaker"', () => {
    expect(
      parseRoleDescription(
        'Managed by Keymaker (see the keymaker docs). keymaker_require_iam_group=ops,keymaker_linux_group_prefix=keymaker_ keymaker_linux_user_suffix="@keymaker-corp.com"',
      ),
    ).toEqual({ requireIamGroup: 'ops', linuxGroupPrefix: 'keymaker_', linuxUserSuffix: '@keymaker-corp.com' });
    expect(parseRoleDescription("keymaker-managed hosts, keymaker_uid_scheme='legacy'")).toEqual({
      uidScheme: 'legacy',
    });
  });
});

describe('configure writes only well-formed tokens', () => {
  it('refuses to rewrite a description that holds a mistyped token, naming it', () => {
    expect(() =>
      applyRoleConfigToDescription('Prod. Keymaker_require_iam_group = old', { requireIamGroup: 'new' }),
    ).toThrow(/Keymaker_require_iam_group = old.*fix the description by hand/);
  });

  it('what it writes parses back to exactly the config it was given', () => {
    const next = applyRoleConfigToDescription('Managed by keymaker. keymaker_require_iam_group=old', {
      requireIamGroup: 'new',
      linuxGroupPrefix: 'keymaker_',
    });
    expect(parseRoleDescription(next)).toEqual({ requireIamGroup: 'new', linuxGroupPrefix: 'keymaker_' });
  });
});
