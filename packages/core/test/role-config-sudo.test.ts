import { parseRoleDescription, RoleConfigError } from '@keymaker/core';
import { serializeRoleConfig } from '../src/role-config';

// Issue 12: sudo from an IAM group, configured like every other token.
test('keymaker_sudo_iam_group names the IAM group whose members get sudo', () => {
  expect(parseRoleDescription('Web. keymaker_require_iam_group=ssh, keymaker_sudo_iam_group="ops-admins"')).toEqual({
    requireIamGroup: 'ssh',
    sudoIamGroup: 'ops-admins',
  });
  expect(serializeRoleConfig({ sudoIamGroup: 'ops-admins' })).toBe('keymaker_sudo_iam_group=ops-admins');
});

test.each([
  ['keymaker_sudo_iam_group=bad/group', /not a valid IAM group name/],
  ['keymaker_sudo_iam_group=a keymaker_sudo_iam_group=b', /given twice with different values/],
  ['keymaker_sudo_iam_group = admins', /keymaker_sudo_iam_group=admins/],
  ['Keymaker_Sudo_IAM_Group=admins', /keymaker_sudo_iam_group/],
])('a bad or mistyped sudo token fails closed: %s', (description, message) => {
  expect(() => parseRoleDescription(description)).toThrow(RoleConfigError);
  expect(() => parseRoleDescription(description)).toThrow(message);
});
