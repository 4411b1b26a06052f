/*
 * Keymaker's configuration lives in the instance role's IAM description as
 * `keymaker_<name>=<value>` tokens, as in keymaker 1.x. Tokens are separated by
 * spaces and/or commas, may sit in free text, and values may be single- or
 * double-quoted.
 */
import { RoleConfigError } from './errors';
import { iamGroupNameProblem, iamRoleNameProblem, isAccountId, IAM_USER_NAME_MAX } from './names';
import { UID_SCHEMES, type UidScheme } from './uid';

export interface RoleConfig {
  /** keymaker_id_resolver_account: the 12-digit account that holds the IAM users. */
  idResolverAccount?: string;
  /** keymaker_id_resolver_iam_role: the role to assume in that account. */
  idResolverIamRole?: string;
  /** keymaker_require_iam_group: users must be members of this IAM group to log in. */
  requireIamGroup?: string;
  /** keymaker_linux_user_suffix: IAM user name = Linux name + suffix. */
  linuxUserSuffix?: string;
  /** keymaker_linux_group_prefix: IAM groups with this prefix become Linux groups. */
  linuxGroupPrefix?: string;
  /** keymaker_uid_scheme: how UIDs/GIDs derive from IAM unique IDs. */
  uidScheme?: UidScheme;
  /** keymaker_sudo_iam_group: members of this IAM group get sudo (NOPASSWD: ALL) on every host of the role. */
  sudoIamGroup?: string;
  /** keymaker_efs_home: FS_ID[:/PATH], the EFS file system (and directory in it) that holds managed users' homes. */
  efsHome?: string;
}

export type ResolvedRoleConfig = Required<Pick<RoleConfig, 'linuxUserSuffix' | 'linuxGroupPrefix' | 'uidScheme'>> &
  Omit<RoleConfig, 'linuxUserSuffix' | 'linuxGroupPrefix' | 'uidScheme'>;

export const DEFAULT_LINUX_GROUP_PREFIX = 'keymaker_';
export const DEFAULT_UID_SCHEME: UidScheme = 'wide';
export const IAM_ROLE_DESCRIPTION_MAX = 1000;

type Field = keyof RoleConfig;

/** Token name <-> field, in the canonical order used when writing a description. */
export const ROLE_CONFIG_TOKENS: ReadonlyArray<readonly [token: string, field: Field]> = [
  ['keymaker_id_resolver_account', 'idResolverAccount'],
  ['keymaker_id_resolver_iam_role', 'idResolverIamRole'],
  ['keymaker_require_iam_group', 'requireIamGroup'],
  ['keymaker_linux_user_suffix', 'linuxUserSuffix'],
  ['keymaker_linux_group_prefix', 'linuxGroupPrefix'],
  ['keymaker_uid_scheme', 'uidScheme'],
  ['keymaker_sudo_iam_group', 'sudoIamGroup'],
  ['keymaker_efs_home', 'efsHome'],
];
const FIELD_BY_TOKEN = new Map(ROLE_CONFIG_TOKENS.map(([token, field]) => [token, field]));

/** Characters a suffix or prefix may hold: those IAM names allow. */
const IAM_NAME_CHARS = /^[A-Za-z0-9+=,.@_-]*$/;

/** Why a value is unacceptable for a field, or undefined when it is fine. */
export function roleConfigValueProblem(field: keyof RoleConfig, value: string): string | undefined {
  switch (field) {
    case 'idResolverAccount':
      return isAccountId(value) ? undefined : 'an AWS account ID is exactly 12 digits';
    case 'idResolverIamRole':
      return iamRoleNameProblem(value) && 'it is not a valid IAM role name (1-64 of A-Z a-z 0-9 +=,.@_-)';
    case 'requireIamGroup':
    case 'sudoIamGroup':
      return iamGroupNameProblem(value) && 'it is not a valid IAM group name (1-128 of A-Z a-z 0-9 +=,.@_-)';
    case 'linuxUserSuffix':
      if (!IAM_NAME_CHARS.test(value)) return 'a suffix may contain only A-Z a-z 0-9 +=,.@_-';
      if (value.length > IAM_USER_NAME_MAX - 1)
        return `a suffix leaves no room for a user name in ${IAM_USER_NAME_MAX} characters`;
      return undefined;
    case 'linuxGroupPrefix':
      if (value.length === 0) return 'an empty prefix would turn every IAM group into a Linux group';
      if (!IAM_NAME_CHARS.test(value) || value.includes(',')) return 'a prefix may contain only A-Z a-z 0-9 +=.@_-';
      if (value.length > 127) return 'a prefix leaves no room for a group name in 128 characters';
      return undefined;
    case 'efsHome':
      return efsHomeProblem(value);
    case 'uidScheme':
      return (UID_SCHEMES as readonly string[]).includes(value)
        ? undefined
        : `known schemes: ${UID_SCHEMES.join(', ')}`;
  }
}

/** An EFS home location: the file system, and the directory in it that holds the homes ("/" for its root). */
export interface EfsHome {
  fileSystemId: string;
  path: string;
}

const EFS_FILE_SYSTEM_ID = /^fs-[0-9a-f]{8,17}$/;

/** Why FS_ID[:/PATH] is not a usable EFS home location, or undefined. */
export function efsHomeProblem(value: string): string | undefined {
  const colon = value.indexOf(':');
  const id = colon < 0 ? value : value.slice(0, colon);
  if (!EFS_FILE_SYSTEM_ID.test(id))
    return 'an EFS file system ID is fs- and 8 to 17 lower-case hex digits (FS_ID[:/PATH], e.g. fs-0123456789abcdef0:/home)';
  if (colon < 0) return undefined;
  const p = value.slice(colon + 1);
  if (!p.startsWith('/')) return 'the path after ":" must be absolute (FS_ID:/PATH)';
  // Normalized: no empty, "." or ".." segment and no trailing slash, so every host names the same directory.
  const segments = p.split('/').slice(1);
  if (p !== '/' && segments.some((s) => s === '' || s === '.' || s === '..'))
    return 'the path must be normalized (no //, /./, /../ or trailing /)';
  if (!/^[A-Za-z0-9._/+@=-]+$/.test(p)) return 'the path may contain only A-Z a-z 0-9 . _ - + @ = and /';
  if (p.length > 255) return 'the path is longer than 255 characters';
  return undefined;
}

/** Parses FS_ID[:/PATH] (validated as efsHomeProblem says); the path defaults to the file system's root. */
export function parseEfsHome(value: string): EfsHome {
  const problem = efsHomeProblem(value);
  if (problem) throw new RoleConfigError(`invalid EFS home ${JSON.stringify(value)}: ${problem}`);
  const colon = value.indexOf(':');
  return colon < 0
    ? { fileSystemId: value, path: '/' }
    : { fileSystemId: value.slice(0, colon), path: value.slice(colon + 1) };
}

interface FoundToken {
  token: string;
  value: string;
  start: number;
  end: number;
}

const TOKEN_START = /(^|[\s,])(keymaker_[A-Za-z0-9_]*)=/g;

/** The words of each known token name, any separators between them ("require iam group"). */
const TOKEN_WORDS = ROLE_CONFIG_TOKENS.map(([token]) =>
  token.slice('keymaker_'.length).split('_').join('[\\W_]*'),
).join('|');
/**
 * Text that looks like a keymaker token, in any case, spacing or punctuation:
 * "keymaker_" anywhere, "keymaker" then a known token name whatever the
 * separators, or "keymaker-<word>=". Outside a well-formed token this is an
 * error: a near miss must never turn into free text (fail closed).
 */
const LOOKS_LIKE_TOKEN = new RegExp(`keymaker(?:_|[\\W_]*(?:${TOKEN_WORDS})|[-.]+[A-Za-z0-9_-]*\\s*=)`, 'gi');

const TOKEN_HINT =
  'write keymaker_<name>=<value> in lower case, with no space around "=", separated from other text by a space or a comma';

/** The offending text around a near miss (its whole word, and a spaced "= value" after it), and how to write it. */
function nearMissProblem(description: string, index: number, matchEnd: number): string {
  let start = index;
  while (start > 0 && !/[\s,]/.test(description[start - 1]!)) start--;
  let end = Math.max(matchEnd, index + /^[^\s,]*/.exec(description.slice(index))![0].length);
  end += /^[^\s,]*/.exec(description.slice(end))![0].length;
  // A spaced "= value" (or ": value") after the name belongs to the near miss.
  const word = description.slice(index, end);
  const assigned = /[=:]$/.test(word)
    ? /^\s*(?:"[^"]*"|'[^']*'|[^\s,]*)/.exec(description.slice(end))
    : /[=:]/.test(word)
      ? null
      : /^\s*[=:]\s*(?:"[^"]*"|'[^']*'|[^\s,]*)/.exec(description.slice(end));
  if (assigned) end += assigned[0].length;
  const text = description.slice(start, end);
  const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  const squeezed = text.toLowerCase().replace(/[^a-z0-9]/g, '');
  const meant = ROLE_CONFIG_TOKENS.map(([token]) => token).find((token) => squeezed.includes(token.replace(/_/g, '')));
  const value = /[=:]\s*["']?([A-Za-z0-9+.@_-]+)/.exec(text.slice(text.toLowerCase().indexOf('keymaker')))?.[1];
  const fix = meant
    ? `write it as ${meant}=${value ?? '<value>'} (lower case, no space around "=", separated from other text by a space or a comma)`
    : TOKEN_HINT;
  return `${JSON.stringify(shown)} looks like a keymaker token but is not one: ${fix}`;
}

/** Finds every keymaker_*= token with its (unquoted) value and its span in the text, and every near miss. */
function scanTokens(description: string): { found: FoundToken[]; problems: string[] } {
  const found: FoundToken[] = [];
  const problems: string[] = [];
  TOKEN_START.lastIndex = 0;
  let match: RegExpExecArray | null;
  while ((match = TOKEN_START.exec(description))) {
    const token = match[2]!;
    const start = match.index + match[1]!.length;
    let cursor = match.index + match[0].length;
    let value: string;
    const quote = description[cursor];
    if (quote === '"' || quote === "'") {
      const close = description.indexOf(quote, cursor + 1);
      if (close < 0) {
        problems.push(`${token} has an opening ${quote} with no closing one`);
        return { found, problems };
      }
      value = description.slice(cursor + 1, close);
      cursor = close + 1;
      if (cursor < description.length && !/[\s,]/.test(description[cursor]!)) {
        const glued = /^[^\s,]*/.exec(description.slice(cursor))![0];
        problems.push(
          `${JSON.stringify(description.slice(start, cursor + glued.length))} has text right after its closing ${quote}: ${TOKEN_HINT}`,
        );
      }
    } else {
      const rest = /^[^\s,'"]*/.exec(description.slice(cursor))![0];
      value = rest;
      cursor += rest.length;
      if (description[cursor] === '"' || description[cursor] === "'") {
        problems.push(`${token} has a stray quote in its value`);
        return { found, problems };
      }
    }
    found.push({ token, value, start, end: cursor });
    TOKEN_START.lastIndex = cursor;
  }
  // Whatever looks like a token and is not inside a well-formed one is a mistyped token.
  const nearMisses: string[] = [];
  LOOKS_LIKE_TOKEN.lastIndex = 0;
  while ((match = LOOKS_LIKE_TOKEN.exec(description))) {
    const at = match.index;
    if (!found.some((token) => at >= token.start && at < token.end))
      nearMisses.push(nearMissProblem(description, at, at + match[0].length));
  }
  if (nearMisses.length > 3) problems.push(...nearMisses.slice(0, 3), `and ${nearMisses.length - 3} more`);
  else problems.push(...nearMisses);
  return { found, problems };
}

/**
 * Parses the keymaker tokens in a role description. Any unknown, invalid,
 * conflicting or incomplete token throws a RoleConfigError naming every
 * problem: a token that cannot be trusted is never silently dropped.
 */
export function parseRoleDescription(description: string | undefined | null): RoleConfig {
  if (description === undefined || description === null) return {};
  if (typeof description !== 'string') throw new RoleConfigError('role description is not text');
  const { found, problems } = scanTokens(description);
  const config: RoleConfig = {};
  for (const { token, value } of found) {
    const field = FIELD_BY_TOKEN.get(token);
    if (!field) {
      problems.push(`unknown token ${token} (known: ${ROLE_CONFIG_TOKENS.map(([t]) => t).join(', ')})`);
      continue;
    }
    const problem = roleConfigValueProblem(field, value);
    if (problem) {
      problems.push(`${token}=${JSON.stringify(value)}: ${problem}`);
      continue;
    }
    const previous = config[field];
    if (previous !== undefined && previous !== value) {
      problems.push(
        `${token} is given twice with different values (${JSON.stringify(previous)} and ${JSON.stringify(value)})`,
      );
      continue;
    }
    (config as Record<Field, string>)[field] = value;
  }
  if ((config.idResolverAccount === undefined) !== (config.idResolverIamRole === undefined)) {
    problems.push('keymaker_id_resolver_account and keymaker_id_resolver_iam_role must be given together');
  }
  if (problems.length > 0) {
    throw new RoleConfigError(`invalid keymaker configuration in the role description: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
  return config;
}

export function resolveRoleConfig(config: RoleConfig): ResolvedRoleConfig {
  return {
    ...config,
    linuxUserSuffix: config.linuxUserSuffix ?? '',
    linuxGroupPrefix: config.linuxGroupPrefix ?? DEFAULT_LINUX_GROUP_PREFIX,
    uidScheme: config.uidScheme ?? DEFAULT_UID_SCHEME,
  };
}

/** Validates a config built in code (e.g. from command-line options); throws like parseRoleDescription. */
export function assertValidRoleConfig(config: RoleConfig): RoleConfig {
  return parseRoleDescription(serializeRoleConfig(config));
}

function quoteIfNeeded(value: string): string {
  return value === '' || /[\s,'"]/.test(value) ? `"${value}"` : value;
}

/** Tokens in canonical order, space-separated; empty string for an empty config. */
export function serializeRoleConfig(config: RoleConfig): string {
  const parts: string[] = [];
  for (const [token, field] of ROLE_CONFIG_TOKENS) {
    const value = config[field];
    if (value !== undefined) parts.push(`${token}=${quoteIfNeeded(value)}`);
  }
  return parts.join(' ');
}

/**
 * Writes a config into an existing description: every keymaker token is
 * replaced, any other text is kept. Throws when the result would exceed IAM's
 * 1000-character limit.
 */
export function applyRoleConfigToDescription(description: string | undefined, config: RoleConfig): string {
  const text = description ?? '';
  const { found, problems } = scanTokens(text);
  if (problems.length > 0) {
    throw new RoleConfigError(
      `cannot rewrite the role description: ${problems.join('; ')}; fix the description by hand`,
    );
  }
  let kept = '';
  let cursor = 0;
  for (const token of found) {
    kept += text.slice(cursor, token.start);
    // Take the token's own trailing comma with it.
    cursor = token.end + (/^[ \t]*,/.exec(text.slice(token.end))?.[0].length ?? 0);
  }
  kept += text.slice(cursor);
  // Tidy the separators the removed tokens leave behind.
  kept = kept
    .replace(/[ \t]*,[ \t]*(?=,|$)/g, '')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/^[\s,]+|[\s,]+$/g, '');
  const tokens = serializeRoleConfig(config);
  const result = [kept, tokens].filter((part) => part.length > 0).join(' ');
  if (result.length > IAM_ROLE_DESCRIPTION_MAX) {
    throw new RoleConfigError(
      `the role description would be ${result.length} characters, over IAM's limit of ${IAM_ROLE_DESCRIPTION_MAX}; shorten its other text`,
    );
  }
  // Only well-formed tokens are ever written: the result must read back as exactly this config.
  const reread = parseRoleDescription(result);
  const same = ROLE_CONFIG_TOKENS.every(([, field]) => reread[field] === config[field]);
  if (!same)
    throw new RoleConfigError(
      `cannot rewrite the role description: the result would not read back as the requested configuration; fix the description by hand`,
    );
  return result;
}
