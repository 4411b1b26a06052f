import { AccessRefusedError, InputError } from './errors';
import { RESERVED_LINUX_NAME_PREFIXES, RESERVED_LINUX_NAMES } from './reserved-names';

export { RESERVED_LINUX_NAME_PREFIXES, RESERVED_LINUX_NAMES } from './reserved-names';

/**
 * Linux login and group names: lower-case portable names that every useradd
 * accepts, at most 32 characters (utmp's limit). No leading '-' (option
 * injection), no '.'-only names, no trailing '$' (Samba machine accounts).
 */
const LINUX_NAME = /^[a-z_][a-z0-9_.-]*$/;
export const LINUX_NAME_MAX = 32;

/** IAM user names: 1-64 of [A-Za-z0-9+=,.@_-]. Group and role names share the charset. */
const IAM_NAME = /^[A-Za-z0-9+=,.@_-]+$/;
export const IAM_USER_NAME_MAX = 64;
export const IAM_GROUP_NAME_MAX = 128;
export const IAM_ROLE_NAME_MAX = 64;

export function linuxNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > LINUX_NAME_MAX) return `it is longer than ${LINUX_NAME_MAX} characters`;
  if (!LINUX_NAME.test(name)) {
    return 'it must start with a lower-case letter or "_" and contain only a-z, 0-9, "_", "." and "-"';
  }
  if (name.endsWith('.')) return 'it must not end with "."';
  return undefined;
}

export function isValidLinuxName(name: string): boolean {
  return linuxNameProblem(name) === undefined;
}

/** Throws INVALID_USERNAME before anything (an API call, a process) sees the name. */
export function assertLinuxUserName(name: string): string {
  const problem = linuxNameProblem(name);
  if (problem) {
    throw new InputError('INVALID_USERNAME', `invalid Linux user name ${JSON.stringify(name)}: ${problem}`);
  }
  return name;
}

const RESERVED = new Set(RESERVED_LINUX_NAMES);

/** A package's service account or a system name (core's list, plus the host's own): never an IAM user's. */
export function isReservedLinuxName(name: string, extra: readonly string[] = []): boolean {
  return (
    RESERVED.has(name) || extra.includes(name) || RESERVED_LINUX_NAME_PREFIXES.some((prefix) => name.startsWith(prefix))
  );
}

/** Refuses (NOT_MANAGED) a reserved name before anything (an API call, a process) sees it. */
export function assertNotReservedName(name: string, extra: readonly string[] = []): string {
  if (isReservedLinuxName(name, extra)) {
    throw new AccessRefusedError(
      'NOT_MANAGED',
      `login name ${JSON.stringify(name)} is reserved (a system or package service account name): keymaker never gives it to an IAM user; rename the IAM user`,
      { details: { reserved: true } },
    );
  }
  return name;
}

function iamNameProblem(name: string, max: number): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > max) return `it is longer than ${max} characters`;
  if (!IAM_NAME.test(name)) return 'IAM names contain only letters, digits and +=,.@_-';
  return undefined;
}

export function iamUserNameProblem(name: string): string | undefined {
  return iamNameProblem(name, IAM_USER_NAME_MAX);
}
export function iamGroupNameProblem(name: string): string | undefined {
  return iamNameProblem(name, IAM_GROUP_NAME_MAX);
}
export function iamRoleNameProblem(name: string): string | undefined {
  return iamNameProblem(name, IAM_ROLE_NAME_MAX);
}

export function assertIamUserName(name: string): string {
  const problem = iamUserNameProblem(name);
  if (problem) {
    throw new InputError('INVALID_USERNAME', `invalid IAM user name ${JSON.stringify(name)}: ${problem}`);
  }
  return name;
}

/** Linux login name -> IAM user name: the role's suffix is appended (keymaker_linux_user_suffix). */
export function iamUserNameForLinuxUser(linuxName: string, suffix: string): string {
  assertLinuxUserName(linuxName);
  return assertIamUserName(linuxName + suffix);
}

/** ASCII-only lower case: IAM names are ASCII, and no other character may fold into one (K, U+212A, is not k). */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * IAM user name -> Linux login name, or undefined when the IAM user cannot be
 * a managed Linux user. IAM user names are case-insensitive (IAM refuses
 * "alice" when "Alice" exists) and the login-time lookup asks IAM for the
 * lower-case login name, so IAM "Alice.Smith" is Linux "alice.smith": the
 * suffix matches in any case and the rest is lower-cased. Lower-casing cannot
 * make two IAM users one Linux name, since IAM has no two users that differ
 * only in case. A name that is still not a valid Linux name (+ = , @, a
 * leading digit or '-', over 32 characters) has no Linux name: it is never
 * rewritten into one.
 */
export function linuxUserNameForIamUser(iamName: string, suffix: string): string | undefined {
  if (iamUserNameProblem(iamName) !== undefined) return undefined;
  const lower = asciiLower(iamName);
  if (!lower.endsWith(asciiLower(suffix))) return undefined;
  // An empty suffix must not trim anything (keymaker 1.0.7's fix).
  const linuxName = suffix.length === 0 ? lower : lower.slice(0, -suffix.length);
  return isValidLinuxName(linuxName) ? linuxName : undefined;
}

/** IAM group name -> Linux group name: only groups with the prefix, prefix stripped. */
export function linuxGroupNameForIamGroup(iamGroupName: string, prefix: string): string | undefined {
  if (prefix.length === 0 || !iamGroupName.startsWith(prefix)) return undefined;
  const linuxName = iamGroupName.slice(prefix.length);
  return isValidLinuxName(linuxName) ? linuxName : undefined;
}

/** The Linux group whose members get sudo: the members of keymaker_sudo_iam_group (issue 12). */
export const SUDO_LINUX_GROUP = 'keymaker-sudo';

/**
 * The Linux group an IAM group becomes on a host: the sudo IAM group is always SUDO_LINUX_GROUP (only that, even
 * when it also has the prefix, so one IAM group never gives two Linux groups the same GID); a prefixed group is
 * its name without the prefix, except that no other group becomes SUDO_LINUX_GROUP; any other group is not mirrored.
 */
export function linuxNameOfIamGroup(
  iamGroupName: string,
  config: { linuxGroupPrefix: string; sudoIamGroup?: string },
): string | undefined {
  if (config.sudoIamGroup !== undefined && iamGroupName === config.sudoIamGroup) return SUDO_LINUX_GROUP;
  const linuxName = linuxGroupNameForIamGroup(iamGroupName, config.linuxGroupPrefix);
  // The sudoers drop-in names SUDO_LINUX_GROUP: a prefixed group of that name (keymaker_keymaker-sudo) must not
  // become it, or whoever may manage prefixed groups would hand out sudo.
  return linuxName === SUDO_LINUX_GROUP ? undefined : linuxName;
}

const ACCOUNT_ID = /^\d{12}$/;
export function isAccountId(value: string): boolean {
  return ACCOUNT_ID.test(value);
}

export interface ParsedArn {
  partition: string;
  service: string;
  region: string;
  accountId: string;
  resource: string;
}

export function parseArn(arn: string): ParsedArn | undefined {
  const parts = arn.split(':');
  if (parts.length < 6 || parts[0] !== 'arn') return undefined;
  const [, partition, service, region, accountId] = parts as [string, string, string, string, string];
  const resource = parts.slice(5).join(':');
  if (!partition || !service || !resource) return undefined;
  return { partition, service, region, accountId, resource };
}

/** arn:aws:iam::123456789012:role/path/NAME -> { accountId, roleName: NAME } */
export function parseRoleArn(arn: string): { accountId: string; roleName: string; partition: string } | undefined {
  const parsed = parseArn(arn);
  if (!parsed || parsed.service !== 'iam' || !isAccountId(parsed.accountId)) return undefined;
  const match = /^role\/(?:[\x21-\x7e]*\/)?([^/]+)$/.exec(parsed.resource);
  if (!match || iamRoleNameProblem(match[1]!)) return undefined;
  return { accountId: parsed.accountId, roleName: match[1]!, partition: parsed.partition };
}
