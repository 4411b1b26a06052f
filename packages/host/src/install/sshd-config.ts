import * as path from 'node:path';
import { parseGroupLine, parsePasswdLine } from '../system/nss-entries';
import { DEFAULT_PATHS, type HostPaths } from '../system/paths';
import { MANAGED_USERS_GROUP } from '../accounts/managed-accounts';

/**
 * Pure text transforms of sshd's configuration. sshd keeps the FIRST value it
 * reads for a keyword, so keymaker's settings must be read before any
 * conflicting line: either in a drop-in pulled in by an Include near the top of
 * sshd_config, or in a block placed before the first directive of sshd_config.
 */

export const SSHD_BLOCK_BEGIN = '# BEGIN keymaker (written by "keymaker install"; "keymaker uninstall" removes it)';
export const SSHD_BLOCK_END = '# END keymaker';
const BEGIN_PREFIX = '# BEGIN keymaker';

/** What keymaker's sshd settings are made of on one host. */
export interface SshdSettingInputs {
  /** The program sshd runs for keys: the lookup wrapper (compat) or the keys client (agent). */
  keysCommand: string;
  lookupUser: string;
  authenticationMethods: string;
}

/**
 * The one table of the sshd settings keymaker needs, in the order it writes them: the writer's
 * lines (keyword value), install's `sshd -T` check and status's (keyword lower-cased) all read it.
 * `agent`: whether agent mode writes it too (it adds no PAM hook, so it leaves the rest alone).
 */
export const SSHD_SETTINGS = [
  { keyword: 'AuthorizedKeysCommand', agent: true, value: (s: SshdSettingInputs) => `${s.keysCommand} %u %f` },
  { keyword: 'AuthorizedKeysCommandUser', agent: true, value: (s: SshdSettingInputs) => s.lookupUser },
  // keyboard-interactive through PAM is what runs the account-creation hook for a
  // user who does not exist yet; the key is still required to log in, and so is every method an
  // administrator's AuthenticationMethods required (composeAuthenticationMethods).
  { keyword: 'UsePAM', agent: false, value: () => 'yes' },
  { keyword: 'KbdInteractiveAuthentication', agent: false, value: () => 'yes' },
  { keyword: 'AuthenticationMethods', agent: false, value: (s: SshdSettingInputs) => s.authenticationMethods },
] as const;

function settingsFor(mode: 'compat' | 'agent', inputs: SshdSettingInputs): Array<[keyword: string, value: string]> {
  return SSHD_SETTINGS.filter((s) => mode === 'compat' || s.agent).map((s) => [s.keyword, s.value(inputs)]);
}

/** The settings keymaker needs, as sshd_config lines. */
export function sshdSettingLines(
  paths: HostPaths,
  lookupUser: string,
  authenticationMethods = KEYMAKER_AUTHENTICATION_METHODS,
): string[] {
  const inputs = { keysCommand: paths.authorizedKeysCommand, lookupUser, authenticationMethods };
  return settingsFor('compat', inputs).map(([keyword, value]) => `${keyword} ${value}`);
}

/** What `sshd -T` must print for those settings once they are in effect (keys are lower-case). */
export function expectedEffectiveSettings(
  paths: HostPaths,
  lookupUser: string,
  authenticationMethods = KEYMAKER_AUTHENTICATION_METHODS,
): Record<string, string> {
  const inputs = { keysCommand: paths.authorizedKeysCommand, lookupUser, authenticationMethods };
  return sshdTExpectations(settingsFor('compat', inputs));
}

function sshdTExpectations(settings: Array<[keyword: string, value: string]>): Record<string, string> {
  return Object.fromEntries(settings.map(([keyword, value]) => [keyword.toLowerCase(), value]));
}

export function renderSshdDropIn(
  paths: HostPaths,
  lookupUser: string,
  authenticationMethods = KEYMAKER_AUTHENTICATION_METHODS,
): string {
  return [
    '# Keymaker: SSH logins backed by IAM users and keys.',
    '# Written by "keymaker install"; "keymaker uninstall" removes it. Do not edit.',
    ...sshdSettingLines(paths, lookupUser, authenticationMethods),
    ...managedMatchLines(),
    '',
  ].join('\n');
}

/**
 * Every keymaker account is in keymaker-users (compat mode: useradd -G, repaired by each sync), and
 * sshd reads no authorized_keys file for that group: a key she plants in ~/.ssh logs nobody in, during
 * her access or after it is revoked. `Match all` ends the block, so nothing read after it (a later
 * drop-in, lines an administrator appends to sshd_config) lands in it. Local accounts are unchanged.
 */
export function managedMatchLines(): string[] {
  return [`Match Group ${MANAGED_USERS_GROUP}`, '    AuthorizedKeysFile none', 'Match all'];
}

/** sshd_config without a drop-in: the Match block goes last, in a keymaker block of its own. */
export function appendSshdMatchBlock(text: string): string {
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  lines.push(SSHD_BLOCK_BEGIN, ...managedMatchLines(), SSHD_BLOCK_END);
  if (trailing !== undefined) lines.push('');
  return lines.join('\n');
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
  if (managedMatchLines().some((l) => l.trim() === t)) return true;
  if (/^AuthenticationMethods /.test(t))
    return isKeymakerAuthenticationMethods(t.slice('AuthenticationMethods '.length));
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
    notes.push(
      "keymaker's END marker is missing: removed its BEGIN line and the keymaker settings right after it, kept everything else",
    );
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
      (p) =>
        path.dirname(p) === path.dirname(paths.sshdDropIn) &&
        !/[*?[]/.test(path.dirname(p)) &&
        globToRegExp(path.basename(p)).test(path.basename(paths.sshdDropIn)),
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

// ---------------------------------------------------------------- authentication strength

/**
 * Install never weakens authentication (issue 13, point 2). keymaker's settings are read before the
 * administrator's (sshd keeps the first value), so they can silently override a stricter
 * `AuthenticationMethods publickey,password` further down. Install therefore compares what sshd
 * would accept without keymaker (the baseline: the same files with keymaker's lines taken out) with
 * what it would accept with them, once globally and once per probe (`sshd -T -C user=...`: a user
 * with no account yet, root, a plain local user, every user and group member named in a Match
 * block, every address and host a Match names), and refuses any change that lets somebody in with
 * less than before.
 *
 * The rule. A login is one *usable* method list: a list of AuthenticationMethods whose methods are
 * all enabled (a list naming a disabled method is skipped by sshd; "any" means one list per enabled
 * method, plus the empty list when empty passwords are allowed). The change is allowed only if every
 * usable list after contains, as a multiset, every method of some usable list before. A method
 * counts only as itself: `keyboard-interactive:pam` covers `keyboard-interactive:pam` or
 * `keyboard-interactive` (the same PAM auth stack, which keymaker's `auth optional` hook line does
 * not change), never `password`, although PAM often asks for the password; `publickey` covers only
 * `publickey`. So keymaker's account-creation step (`keyboard-interactive:pam` in front of a list)
 * is an *added* step that never stands in for one the administrator required. On top of that:
 * `UsePAM` never goes from yes to no, and `PasswordAuthentication` and `PermitEmptyPasswords` never
 * from no to yes. Turning `KbdInteractiveAuthentication` on (which keymaker needs for the hook) is
 * allowed only through the list rule, that is, only where every list that can use it still needs
 * everything some list needed before; a list that was dormant because keyboard-interactive was off
 * (for example `AuthenticationMethods keyboard-interactive` in a Match block) would wake up alone,
 * and that is refused.
 *
 * Composition. keymaker does not replace an administrator's AuthenticationMethods: it keeps every
 * usable list and adds, for each, the same list with `keyboard-interactive:pam` in front, so the
 * account-creation hook can run first and the login still needs all the administrator required
 * (`publickey,password` becomes `publickey,password keyboard-interactive:pam,publickey,password`).
 * With "any" it is keymaker 1.x's `publickey keyboard-interactive:pam,publickey`.
 */

export const KEYMAKER_HOOK_METHOD = 'keyboard-interactive:pam';
export const KEYMAKER_AUTHENTICATION_METHODS = 'publickey keyboard-interactive:pam,publickey';

/** Which sshd -T keyword enables each method (older sshd says challengeresponseauthentication). */
function methodEnabled(t: Map<string, string>, method: string): boolean {
  const on = (key: string, dflt: string) => (t.get(key) ?? dflt) === 'yes';
  switch (method.split(':')[0]) {
    case 'publickey':
      return on('pubkeyauthentication', 'yes');
    case 'password':
      return on('passwordauthentication', 'yes');
    case 'keyboard-interactive':
      return (t.get('kbdinteractiveauthentication') ?? t.get('challengeresponseauthentication') ?? 'yes') === 'yes';
    case 'hostbased':
      return on('hostbasedauthentication', 'no');
    case 'gssapi-with-mic':
      return on('gssapiauthentication', 'no');
    default:
      return false;
  }
}

/** The method lists sshd would let complete a login, from `sshd -T` output. */
export function usableMethodLists(t: Map<string, string>): string[][] {
  const value = (t.get('authenticationmethods') ?? 'any').trim();
  if (value === 'any' || value === '') {
    const lists = ['publickey', 'password', 'keyboard-interactive', 'hostbased', 'gssapi-with-mic']
      .filter((m) => methodEnabled(t, m))
      .map((m) => [m]);
    if (methodEnabled(t, 'password') && t.get('permitemptypasswords') === 'yes') lists.push([]); // "none" with an empty password
    return lists;
  }
  return value
    .split(/\s+/)
    .map((list) => list.split(','))
    .filter((list) => list.every((m) => methodEnabled(t, m)));
}

function covers(after: string, before: string): boolean {
  return after === before || (before === 'keyboard-interactive' && after.startsWith('keyboard-interactive:'));
}

/** Does the list `after` need at least every method of `before` (each method of after used once)? */
function listContains(after: string[], before: string[]): boolean {
  const left = [...after];
  // Exact matches first, so a generic "keyboard-interactive" does not take a submethod another needs.
  const order = [...before].sort((a, b) => Number(a === 'keyboard-interactive') - Number(b === 'keyboard-interactive'));
  for (const b of order) {
    const i =
      left.findIndex((a) => a === b) >= 0 ? left.findIndex((a) => a === b) : left.findIndex((a) => covers(a, b));
    if (i < 0) return false;
    left.splice(i, 1);
  }
  return true;
}

const showList = (list: string[]) => (list.length === 0 ? 'an empty password' : list.join(','));

/**
 * Why `after` lets somebody in with less than `before` (both `sshd -T` outputs for the same
 * connection); empty when it does not. Each reason is one short clause with its fix.
 */
export function authenticationWeakenings(before: Map<string, string>, after: Map<string, string>): string[] {
  const reasons: string[] = [];
  const was = (k: string, dflt: string) => before.get(k) ?? dflt;
  const is = (k: string, dflt: string) => after.get(k) ?? dflt;
  if (was('usepam', 'no') === 'yes' && is('usepam', 'no') !== 'yes')
    reasons.push('UsePAM would go from yes to no (the PAM account and session checks would stop)');
  for (const [key, name] of [
    ['passwordauthentication', 'PasswordAuthentication'],
    ['permitemptypasswords', 'PermitEmptyPasswords'],
  ] as const) {
    const dflt = key === 'passwordauthentication' ? 'yes' : 'no';
    if (was(key, dflt) === 'no' && is(key, dflt) === 'yes') reasons.push(`${name} would go from no to yes`);
  }
  const beforeLists = usableMethodLists(before);
  const required = beforeLists.length > 0 ? beforeLists.map(showList).join(' or ') : 'nothing that can succeed';
  for (const list of usableMethodLists(after)) {
    if (beforeLists.some((b) => listContains(list, b))) continue;
    let fix =
      "give it an AuthenticationMethods that still requires what it did, read before keymaker's settings (a Match block, or a drop-in sorted before 50-keymaker.conf)";
    if (list.includes('publickey') && !methodEnabled(before, 'publickey')) {
      fix =
        'PubkeyAuthentication is off and keymaker logs IAM users in with keys: turn it on yourself if keys may log in';
    } else if (
      list.some((m) => m.startsWith('keyboard-interactive')) &&
      !methodEnabled(before, 'keyboard-interactive')
    ) {
      fix =
        'keymaker turns KbdInteractiveAuthentication on, which wakes that list: remove it, or set KbdInteractiveAuthentication no in that Match block';
    }
    reasons.push(`a login with ${showList(list)} would be accepted where sshd required ${required}; fix: ${fix}`);
  }
  return reasons;
}

/**
 * The AuthenticationMethods keymaker writes for a baseline (`sshd -T` without keymaker): keymaker
 * 1.x's value when the administrator set none ("any"), else every usable list of theirs plus the
 * same list behind keymaker's account-creation step. Idempotent on its own output.
 */
export function composeAuthenticationMethods(baseline: Map<string, string> | undefined): string {
  const value = (baseline?.get('authenticationmethods') ?? 'any').trim();
  if (!baseline || value === 'any' || value === '') return KEYMAKER_AUTHENTICATION_METHODS;
  const lists = usableMethodLists(baseline).map((l) => l.join(','));
  const base = lists.filter((l) => !lists.some((other) => l === `${KEYMAKER_HOOK_METHOD},${other}`));
  const out = [...base];
  for (const l of base) if (!l.startsWith('keyboard-interactive')) out.push(`${KEYMAKER_HOOK_METHOD},${l}`);
  return [...new Set(out)].join(' ');
}

/** An AuthenticationMethods value keymaker itself writes (for taking its lines out again). */
export function isKeymakerAuthenticationMethods(value: string): boolean {
  const lists = value.trim().split(/\s+/);
  if (value.trim() === KEYMAKER_AUTHENTICATION_METHODS) return true;
  if (!lists.some((l) => l.startsWith(`${KEYMAKER_HOOK_METHOD},`))) return false;
  return (
    composeAuthenticationMethods(
      new Map([
        ['authenticationmethods', value],
        ['pubkeyauthentication', 'yes'],
        ['passwordauthentication', 'yes'],
        ['kbdinteractiveauthentication', 'yes'],
        ['hostbasedauthentication', 'yes'],
        ['gssapiauthentication', 'yes'],
      ]),
    ) === value.trim()
  );
}

/** One connection `sshd -T` is asked about; `spec` is the -C argument (undefined = no Match applied). */
export interface SshdProbe {
  label: string;
  spec?: string;
}

/** A name keymaker would create on first login: no account has it. */
export const NEW_USER_PROBE = 'keymaker-new-user';
const PROBE_ADDR = '203.0.113.10';
const PROBE_HOST = 'client.example.net';
const MAX_PROBES = 40;

const sample = (pattern: string) => pattern.replace(/[*?]/g, 'x');

/** The entries of a passwd or group file; lines that are not entries (blank, malformed) are skipped. */
function entriesOf<T>(text: string, parse: (line: string) => T | undefined): T[] {
  return text.split('\n').flatMap((line) => parse(line) ?? []);
}

/**
 * The connections to compare before and after: globally, a user with no account yet (the managed
 * user), root, a plain local user, and every user, group member, address and host named in a Match
 * block of `configTexts` (sshd_config and its drop-ins). Negated and wildcard patterns are sampled
 * with a name that matches; Match LocalAddress/LocalPort/RDomain are not probed.
 */
export function sshdProbes(configTexts: string[], passwd = '', group = ''): SshdProbe[] {
  const users: string[] = [NEW_USER_PROBE, 'root'];
  const passwdEntries = entriesOf(passwd, parsePasswdLine);
  const groupEntries = entriesOf(group, parseGroupLine);
  const plain = passwdEntries.find((u) => u.uid >= 1000 && u.uid < 60000);
  if (plain) users.push(plain.name);
  const addrs: string[] = [];
  const hosts: string[] = [];
  for (const text of configTexts) {
    for (const line of text.split('\n')) {
      const tokens = sshdTokens(line);
      if (tokens[0] !== 'match') continue;
      for (let i = 1; i + 1 < tokens.length; i += 2) {
        const criterion = tokens[i]!.toLowerCase();
        const patterns = tokens[i + 1]!.split(',').filter((p) => p !== '' && !p.startsWith('!'));
        if (criterion === 'user') users.push(...patterns.map(sample));
        else if (criterion === 'address')
          addrs.push(...patterns.map((p) => sample(p.split('/')[0]!).replace(/x/g, '1')));
        else if (criterion === 'host') hosts.push(...patterns.map(sample));
        else if (criterion === 'group') {
          for (const g of patterns) {
            const re = globToRegExp(g);
            const entry = groupEntries.find((g) => re.test(g.name));
            if (!entry) continue;
            users.push(...entry.members.slice(0, 3));
            const primary = passwdEntries.find((u) => u.gid === entry.gid);
            if (primary) users.push(primary.name);
          }
        }
      }
    }
  }
  const probes: SshdProbe[] = [{ label: 'every connection (no Match)' }];
  const add = (user: string, host = PROBE_HOST, addr = PROBE_ADDR) => {
    const spec = `user=${user},host=${host},addr=${addr}`;
    if (/^[^\s,=]+$/.test(user) && !probes.some((p) => p.spec === spec))
      probes.push({
        label:
          user === NEW_USER_PROBE
            ? 'a user with no account yet'
            : `user ${user}${addr !== PROBE_ADDR ? ` from ${addr}` : ''}${host !== PROBE_HOST ? ` from ${host}` : ''}`,
        spec,
      });
  };
  for (const u of users) add(u);
  for (const a of addrs) if (/^[0-9a-fA-F.:]+$/.test(a)) for (const u of users.slice(0, 3)) add(u, PROBE_HOST, a);
  for (const h of hosts) for (const u of users.slice(0, 3)) add(u, h);
  return probes.slice(0, MAX_PROBES);
}

/**
 * The baseline of sshd_config: keymaker's block taken out and, with a drop-in Include, keymaker's
 * drop-in replaced by `emptyDropIn`, so `sshd -T -f` on it reads what sshd reads without keymaker.
 */
export function baselineMain(mainConfig: string, dirEntries: string[], paths: HostPaths, emptyDropIn: string): string {
  const stripped = removeSshdBlocks(mainConfig, paths).text;
  const include = findDropInInclude(stripped, paths);
  return include ? candidateMainForDropIn(stripped, include, dirEntries, paths, emptyDropIn) : stripped;
}

/** The group every agent-served user is in (iam-identity-source.ts); sshd's `Match Group` names it. */
export const AGENT_MANAGED_GROUP = MANAGED_USERS_GROUP;

/**
 * Agent mode's drop-in: the keys come from the agent through its curl client; an IAM user's own
 * ~/.ssh/authorized_keys is never read (`AuthorizedKeysFile none` for the managed group), so a key
 * planted there logs nobody in. No PAM account hook, so KbdInteractiveAuthentication and
 * AuthenticationMethods are the administrator's. The Match block is last: in an Included file it ends
 * at the end of that file (OpenSSH 9.2, checked), and install verifies it with `sshd -T -C`.
 */
export function renderAgentSshdDropIn(keysClient: string, lookupUser: string): string {
  return [
    '# Keymaker (agent mode): SSH logins backed by IAM users and keys.',
    '# Written by "keymaker install"; "keymaker uninstall" removes it. Do not edit.',
    ...agentSettings(keysClient, lookupUser).map(([keyword, value]) => `${keyword} ${value}`),
    `Match Group ${AGENT_MANAGED_GROUP}`,
    '    AuthorizedKeysFile none',
    '',
  ].join('\n');
}

/** What `sshd -T` must print once the agent-mode drop-in is in effect. */
export function expectedAgentSettings(keysClient: string, lookupUser: string): Record<string, string> {
  return sshdTExpectations(agentSettings(keysClient, lookupUser));
}

function agentSettings(keysClient: string, lookupUser: string): Array<[keyword: string, value: string]> {
  // Agent mode writes no AuthenticationMethods: the value is never read.
  return settingsFor('agent', { keysCommand: keysClient, lookupUser, authenticationMethods: '' });
}
