import * as path from 'node:path';
import { DEFAULT_PATHS, type HostPaths } from '../paths';

/**
 * Pure text transforms of sshd's configuration. sshd keeps the FIRST value it
 * reads for a keyword, so keymaker's settings must be read before any
 * conflicting line: either in a drop-in pulled in by an Include near the top of
 * sshd_config, or in a block placed before the first directive of sshd_config.
 */

export const SSHD_BLOCK_BEGIN = '# BEGIN keymaker (written by "keymaker install"; "keymaker uninstall" removes it)';
export const SSHD_BLOCK_END = '# END keymaker';
const BEGIN_PREFIX = '# BEGIN keymaker';

/** The settings keymaker needs, as sshd_config lines. */
export function sshdSettingLines(paths: HostPaths, lookupUser: string): string[] {
  return [
    `AuthorizedKeysCommand ${paths.authorizedKeysCommand} %u %f`,
    `AuthorizedKeysCommandUser ${lookupUser}`,
    // keyboard-interactive through PAM is what runs the account-creation hook for a
    // user who does not exist yet; the key is still required to log in.
    'UsePAM yes',
    'KbdInteractiveAuthentication yes',
    'AuthenticationMethods publickey keyboard-interactive:pam,publickey',
  ];
}

/** What `sshd -T` must print for those settings once they are in effect (keys are lower-case). */
export function expectedEffectiveSettings(paths: HostPaths, lookupUser: string): Record<string, string> {
  return {
    authorizedkeyscommand: `${paths.authorizedKeysCommand} %u %f`,
    authorizedkeyscommanduser: lookupUser,
    usepam: 'yes',
    kbdinteractiveauthentication: 'yes',
    authenticationmethods: 'publickey keyboard-interactive:pam,publickey',
  };
}

export function renderSshdDropIn(paths: HostPaths, lookupUser: string): string {
  return [
    '# Keymaker: SSH logins backed by IAM users and keys.',
    '# Written by "keymaker install"; "keymaker uninstall" removes it. Do not edit.',
    ...sshdSettingLines(paths, lookupUser),
    '',
  ].join('\n');
}

function isBlankOrComment(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#');
}

/** sshd_config line -> [keyword lower-case, ...args] ("Keyword=value" and quoted args allowed). */
export function sshdTokens(line: string): string[] {
  if (isBlankOrComment(line)) return [];
  const m = /^\s*([^\s=]+)\s*=?\s*(.*)$/.exec(line);
  if (!m) return [];
  const tokens = [m[1]!.toLowerCase()];
  for (const arg of m[2]!.matchAll(/"([^"]*)"|(\S+)/g)) tokens.push(arg[1] ?? arg[2]!);
  return tokens;
}

/** A line keymaker writes inside its block: one of its settings, for any lookup user. */
function isKeymakerSettingLine(line: string, paths: HostPaths): boolean {
  const t = line.trim();
  if (/^AuthorizedKeysCommandUser \S+$/.test(t)) return true;
  return sshdSettingLines(paths, '-').some((setting) => setting === t);
}

export interface RemovedLines {
  text: string;
  /** What was not unambiguously keymaker's and was kept, or keymaker's lines found changed (for a warning). */
  notes: string[];
}

/**
 * Removes every keymaker block: the BEGIN/END markers and keymaker's own
 * setting lines between them. A line somebody else put inside the block is
 * kept where it was (and named in a note); a block whose END marker is gone
 * loses only its BEGIN line and the keymaker settings right after it, never
 * the rest of the file.
 */
export function removeSshdBlocks(text: string, paths: HostPaths): RemovedLines {
  const lines = text.split('\n');
  const out: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith(BEGIN_PREFIX)) {
      out.push(line);
      continue;
    }
    let end = i + 1;
    while (end < lines.length && lines[end]!.trim() !== SSHD_BLOCK_END && !lines[end]!.startsWith(BEGIN_PREFIX)) end++;
    if (end < lines.length && lines[end]!.trim() === SSHD_BLOCK_END) {
      for (const inner of lines.slice(i + 1, end)) {
        if (isKeymakerSettingLine(inner, paths)) continue;
        out.push(inner);
        notes.push(`kept ${JSON.stringify(inner)}, which is inside keymaker's block but is not keymaker's`);
      }
      i = end;
      continue;
    }
    // No END marker: only what is unambiguously keymaker's goes.
    let j = i + 1;
    while (j < lines.length && isKeymakerSettingLine(lines[j]!, paths)) j++;
    notes.push("keymaker's END marker is missing: removed its BEGIN line and the keymaker settings right after it, kept everything else");
    i = j - 1;
  }
  return { text: out.join('\n'), notes };
}

/** removeSshdBlocks without the notes. */
export function stripSshdBlock(text: string, paths: HostPaths = DEFAULT_PATHS): string {
  return removeSshdBlocks(text, paths).text;
}

/**
 * Inserts the keymaker block before the first directive of sshd_config (after
 * the leading comments): that is before the first Match, and before any line
 * that would otherwise set one of our keywords first.
 */
export function insertSshdBlock(text: string, settingLines: string[]): string {
  const lines = stripSshdBlock(text).split('\n');
  let at = lines.findIndex((line) => !isBlankOrComment(line));
  if (at < 0) {
    at = lines.length;
    if (lines[at - 1] === '') at -= 1; // keep the trailing newline last
  }
  lines.splice(at, 0, SSHD_BLOCK_BEGIN, ...settingLines, SSHD_BLOCK_END);
  return lines.join('\n');
}

/** A shell-style glob of one path component -> RegExp. */
function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`);
}

export interface DropInInclude {
  /** Index of the Include line in sshd_config split on '\n'. */
  lineIndex: number;
  /** The Include arguments (absolute paths). */
  patterns: string[];
  /** Index into patterns of the one that matches the drop-in. */
  matching: number;
}

/** sshd resolves relative Include paths against /etc/ssh. */
function absoluteInclude(p: string, sshdConfig: string): string {
  return path.isAbsolute(p) ? p : path.join(path.dirname(sshdConfig), p);
}

/**
 * The top-level Include (before any Match) that pulls in the drop-in, if any.
 * Only patterns with wildcards in the last component are understood; anything
 * else counts as "no usable Include" and keymaker edits sshd_config instead.
 */
export function findDropInInclude(mainConfig: string, paths: HostPaths): DropInInclude | undefined {
  const lines = mainConfig.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const tokens = sshdTokens(lines[i]!);
    if (tokens[0] === 'match') return undefined;
    if (tokens[0] !== 'include') continue;
    const patterns = tokens.slice(1).map((p) => absoluteInclude(p, paths.sshdConfig));
    const matching = patterns.findIndex(
      (p) => path.dirname(p) === path.dirname(paths.sshdDropIn) && !/[*?[]/.test(path.dirname(p)) && globToRegExp(path.basename(p)).test(path.basename(paths.sshdDropIn)),
    );
    if (matching >= 0) return { lineIndex: i, patterns, matching };
  }
  return undefined;
}

/**
 * A copy of sshd_config whose drop-in Include is expanded into explicit file
 * names, with `candidateDropIn` standing in for keymaker's drop-in at the very
 * position the glob would read it (sorted like glob(3)). `sshd -t/-T -f` on it
 * sees exactly what the live config will be, before anything is switched.
 */
export function candidateMainForDropIn(
  mainConfig: string,
  include: DropInInclude,
  dirEntries: string[],
  paths: HostPaths,
  candidateDropIn: string,
): string {
  const lines = mainConfig.split('\n');
  const pattern = include.patterns[include.matching]!;
  const re = globToRegExp(path.basename(pattern));
  const dir = path.dirname(pattern);
  const names = new Set(dirEntries.filter((name) => re.test(name) && !name.startsWith('.')));
  names.add(path.basename(paths.sshdDropIn));
  const expanded = [...names]
    .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : a === b ? 0 : 1))
    .map((name) => (name === path.basename(paths.sshdDropIn) ? candidateDropIn : path.join(dir, name)));
  const args = [...include.patterns];
  args.splice(include.matching, 1, ...expanded);
  lines[include.lineIndex] = `Include ${args.map(quoteIfNeeded).join(' ')}`;
  return lines.join('\n');
}

function quoteIfNeeded(p: string): string {
  return /\s/.test(p) ? `"${p}"` : p;
}

/** `sshd -T` output -> keyword (lower-case) -> value (the first line for a keyword). */
export function parseSshdT(output: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of output.split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m && !map.has(m[1]!)) map.set(m[1]!.toLowerCase(), m[2]!);
  }
  return map;
}

/** The differences between the effective settings and what keymaker needs; empty when all are in effect. */
export function effectiveSettingProblems(sshdT: Map<string, string>, expected: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [key, want] of Object.entries(expected)) {
    const got = sshdT.get(key);
    // Older sshd versions do not know every keyword; only a different value is a problem.
    if (got !== undefined && got !== want) problems.push(`${key} is "${got}", not "${want}"`);
  }
  return problems;
}
