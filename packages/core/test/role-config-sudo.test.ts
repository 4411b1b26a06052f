import {
  isReservedLinuxName,
  linuxNameOfIamGroup,
  parseRoleDescription,
  RoleConfigError,
  SUDO_LINUX_GROUP,
} from '@keymaker/core';
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

test('the sudo IAM group becomes keymaker-sudo only, even with the prefix; other groups keep the prefix rule', () => {
  const config = { linuxGroupPrefix: 'keymaker_', sudoIamGroup: 'keymaker_admins' };
  expect(linuxNameOfIamGroup('keymaker_admins', config)).toBe(SUDO_LINUX_GROUP);
  expect(linuxNameOfIamGroup('keymaker_devs', config)).toBe('devs');
  expect(linuxNameOfIamGroup('ops-admins', config)).toBeUndefined();
  expect(linuxNameOfIamGroup('ops-admins', { linuxGroupPrefix: 'keymaker_', sudoIamGroup: 'ops-admins' })).toBe(
    'keymaker-sudo',
  );
  expect(isReservedLinuxName(SUDO_LINUX_GROUP)).toBe(false);
});

test('no other IAM group becomes keymaker-sudo: a prefixed group named after it is not mirrored (it would grant sudo)', () => {
  for (const sudoIamGroup of ['ops-admins', undefined]) {
    const config = { linuxGroupPrefix: 'keymaker_', sudoIamGroup };
    expect(linuxNameOfIamGroup(`keymaker_${SUDO_LINUX_GROUP}`, config)).toBeUndefined();
  }
  expect(linuxNameOfIamGroup('km-keymaker-sudo', { linuxGroupPrefix: 'km-' })).toBeUndefined();
});
