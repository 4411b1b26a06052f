/*
 * What each exit code means, for the README table and the man page.
 * Typed by ErrorCode: a code added to EXIT_CODES without a meaning here fails the typecheck and the unit test.
 * (Extra keys are tolerated so a meaning can land before its code.)
 */
import { EXIT_CODES, type ErrorCode } from '@keymaker/core';

export const EXIT_CODE_MEANINGS: Record<ErrorCode, string> & Record<string, string> = {
  INTERNAL: 'unexpected error (a bug); rerun with --debug for details',
  USAGE: 'bad command line: unknown command or option, missing argument',
  INVALID_ARGUMENT: 'an argument or option value is not valid',
  INVALID_USERNAME: 'not a valid Linux or IAM user name',
  INVALID_SSH_KEY: 'not a usable SSH public key',
  INVALID_ROLE_CONFIG: "the instance role's description has invalid keymaker_ tokens",
  FILE_NOT_FOUND: 'a named file does not exist',
  NO_SUCH_USER: 'no such IAM user',
  NO_SUCH_KEY: 'no such SSH key for that IAM user',
  NO_SUCH_ENTITY: 'another IAM entity (role, group, policy) does not exist',
  KEY_QUOTA_EXCEEDED: 'the IAM user already has as many SSH keys as IAM allows',
  ACCESS_DENIED: 'AWS refused the call (IAM permissions)',
  THROTTLED: 'AWS throttled the call; retry later',
  NO_CREDENTIALS: 'no AWS credentials found',
  NO_REGION: 'no AWS region set',
  ROLE_CREDENTIALS: "the credentials are a role's, which has no IAM user; pass --user",
  NETWORK: 'AWS could not be reached',
  AWS_ERROR: 'AWS returned another error',
  DEADLINE_EXCEEDED: 'the work did not finish in time',
  LIMIT_EXCEEDED: 'an IAM limit was reached',
  NO_INSTANCE_ROLE: 'this instance has no IAM role',
  UNKNOWN_PROFILE: 'the AWS profile named by --profile or AWS_PROFILE does not exist',
  NOT_MANAGED: 'the Linux user is not one keymaker manages (login refused)',
  NOT_IN_REQUIRED_GROUP: 'the user is not in the required IAM group (login refused)',
  NOT_ROOT: 'the command must run as root',
  UNSAFE_PATH: 'a file or directory keymaker trusts can be changed by someone other than root',
  SSHD_CONFIG_INVALID: 'sshd rejects the configuration',
  SYSTEM_COMMAND_FAILED: 'a system command (useradd, groupadd, systemctl, ...) failed',
  UID_CONFLICT: 'the derived UID or GID belongs to another account',
  LOCKED: 'another keymaker process holds the lock',
  EXISTING_AUTHORIZED_KEYS_COMMAND: 'sshd already has another AuthorizedKeysCommand; --force replaces it',
  GROUP_NOT_MANAGED: "a Linux group of that name exists and is not keymaker's",
  UNSUPPORTED_HOST: 'this host lacks what keymaker needs (e.g. sshd with PAM)',
  WEAKER_AUTHENTICATION: "install refused: keymaker's sshd settings would let somebody log in with less than before",
  STATUS_PROBLEMS: 'keymaker status found a problem (its table or --json names every failing check)',
  AGENT_MODE_UNAVAILABLE:
    'install --mode agent cannot work on this host (libnss-systemd missing with no apt-get that installs it alone, an authselect profile keymaker cannot extend, a line that stops before systemd, no Include of sshd_config.d)',
  EFS_HOME_REFUSED:
    'a home on the EFS share is refused (share not mounted, symlink, owned by another UID, UID collision): login refused',
  SYNC_PARTIAL:
    'sync_groups applied every change it could, but a read or a change failed (named on stderr and in syslog); the next run retries it',
};

export interface ExitCodeRow {
  code: number;
  name: ErrorCode;
  meaning: string;
}

/** Every exit code, lowest first (0 = success is not an error code and is listed by the renderers). */
export function exitCodeRows(): ExitCodeRow[] {
  return (Object.entries(EXIT_CODES) as Array<[ErrorCode, number]>)
    .map(([name, code]) => ({ code, name, meaning: EXIT_CODE_MEANINGS[name] }))
    .sort((a, b) => a.code - b.code);
}

/** The README's exit-code table (Markdown), checked by a unit test against EXIT_CODES. */
export function exitCodeMarkdown(): string {
  const lines = ['| code | name | meaning |', '|---:|---|---|', '| 0 | | success |'];
  for (const row of exitCodeRows())
    lines.push(`| ${row.code} | \`${row.name}\` | ${row.meaning.replace(/\|/g, '\\|')} |`);
  return lines.join('\n');
}
