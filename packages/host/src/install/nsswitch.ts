/**
 * /etc/nsswitch.conf in agent mode: libnss-systemd must be asked on the passwd, group AND shadow lines. With
 * `shadow: files` only, pam_unix's account stage finds no shadow entry for an agent-served user and sshd refuses
 * the login (observed; ../shared/notes/host-identity.md). Pure text transforms: the install plan writes the result
 * atomically and its journal keeps the original bytes, so uninstall restores the file byte for byte.
 *
 * `systemd` goes right after `files`/`compat` (local accounts keep winning, as every distribution orders it) and
 * before network sources such as `sss` or `ldap`, the position Debian's package uses. An administrator's action
 * item after the local source that ends the lookup (`files [NOTFOUND=return]`) says "nothing after files": that
 * line is not edited but reported as blocked, because agent mode cannot work there and moving `systemd` in front
 * of the action would change what the administrator chose. A line that already lists systemd is left alone, so a
 * second install changes nothing.
 */

/** The databases agent mode needs; `gshadow` is not consulted by sshd or PAM for a login. */
export const AGENT_NSS_DATABASES = ['passwd', 'group', 'shadow'] as const;
export type AgentNssDatabase = (typeof AGENT_NSS_DATABASES)[number];

export interface NsswitchEdit {
  text: string;
  /** The databases whose line got `systemd` (or was added); empty when the file already had it everywhere. */
  changed: AgentNssDatabase[];
  /** Lines left as they are because an action item stops the lookup before systemd could be asked. */
  blocked: { database: AgentNssDatabase; line: string }[];
}

interface ParsedLine {
  database: string;
  /** Everything after the colon, split into sources and their `[...]` action items. */
  items: string[];
}

function parseLine(line: string): ParsedLine | undefined {
  const t = line.replace(/#.*/, '').trim();
  const match = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$/.exec(t);
  if (!match) return undefined;
  // `[NOTFOUND=return]` may contain spaces inside the brackets: keep each bracketed group whole.
  const items = match[2]!.match(/\[[^\]]*\]|[^\s[]+/g) ?? [];
  return { database: match[1]!.toLowerCase(), items };
}

function isAction(item: string): boolean {
  return item.startsWith('[');
}

function hasSystemd(items: string[]): boolean {
  return items.some((item) => !isAction(item) && item === 'systemd');
}

/** The sources of a database line, without action items; undefined when the file has no line for it. */
export function nssSources(text: string, database: string): string[] | undefined {
  let found: string[] | undefined;
  for (const line of text.split('\n')) {
    const parsed = parseLine(line);
    // glibc uses the first line for a database; later ones are ignored.
    if (parsed && parsed.database === database && found === undefined) found = parsed.items.filter((i) => !isAction(i));
  }
  return found;
}

/** The databases of AGENT_NSS_DATABASES whose line does not list systemd (a missing line counts as "files"). */
export function databasesWithoutSystemd(text: string): AgentNssDatabase[] {
  return AGENT_NSS_DATABASES.filter((db) => !(nssSources(text, db) ?? []).includes('systemd'));
}

/** Where `systemd` goes, or undefined when an action item after the local source returns before it. */
function withSystemd(items: string[]): string[] | undefined {
  let at = -1;
  for (let i = 0; i < items.length; i++) {
    if (!isAction(items[i]!) && (items[i] === 'files' || items[i] === 'compat')) at = i;
  }
  if (at < 0) return ['files', 'systemd', ...items];
  // Past the action items that belong to `files`.
  let insert = at + 1;
  while (insert < items.length && isAction(items[insert]!)) {
    if (/=\s*return\b/i.test(items[insert]!)) return undefined;
    insert++;
  }
  return [...items.slice(0, insert), 'systemd', ...items.slice(insert)];
}

/**
 * Adds `systemd` to the passwd, group and shadow lines. The rewritten line keeps its database name and
 * indentation; a trailing comment is kept. A database with no line gets `db: files systemd` at the end (glibc's
 * default for a missing line is files only, so this is the same lookup plus the agent).
 */
export function addSystemdToNsswitch(text: string): NsswitchEdit {
  return editNssLines(text, {
    everyLine: false,
    listed: (_line, items) => hasSystemd(items),
    rewrite: (_line, items) => withSystemd(items),
    pad: 15,
  });
}

/** The edit both files share: each passwd/group/shadow line listed, rewritten or blocked; missing ones appended. */
function editNssLines(
  text: string,
  o: {
    /** Edit every line of a database (a profile template), not only the first (the one glibc reads). */
    everyLine: boolean;
    listed: (line: string, items: string[]) => boolean;
    rewrite: (line: string, items: string[]) => string[] | undefined;
    /** Width of `db:` in an appended line, as the file's own lines have it. */
    pad: number;
  },
): NsswitchEdit {
  const changed = new Set<AgentNssDatabase>();
  const blocked: NsswitchEdit['blocked'] = [];
  const seen = new Set<string>();
  const lines = text.split('\n').map((line) => {
    const parsed = parseLine(line);
    if (!parsed || (!o.everyLine && seen.has(parsed.database))) return line;
    seen.add(parsed.database);
    const database = parsed.database as AgentNssDatabase;
    if (!AGENT_NSS_DATABASES.includes(database) || o.listed(line, parsed.items)) return line;
    const items = o.rewrite(line, parsed.items);
    if (!items) {
      blocked.push({ database, line: line.trim() });
      return line;
    }
    changed.add(database);
    const head = /^\s*[A-Za-z_][A-Za-z0-9_]*\s*:\s*/.exec(line)![0];
    const comment = /\s+#.*$/.exec(line)?.[0] ?? '';
    return `${head}${items.join(' ')}${comment}`;
  });
  const missing = AGENT_NSS_DATABASES.filter((db) => !seen.has(db));
  if (missing.length > 0) {
    const end = lines.length > 0 && lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
    lines.splice(end, 0, ...missing.map((db) => `${`${db}:`.padEnd(o.pad)}files systemd`));
    if (end === lines.length - missing.length) lines.push('');
    for (const db of missing) changed.add(db);
  }
  return { text: lines.join('\n'), changed: [...changed], blocked };
}

/**
 * The same edit on an authselect profile's nsswitch.conf template (authselect-profiles(5)): every line of a database
 * counts (a profile may have two `group:` lines, one per feature), and a line with a `{if ...}` template expression
 * that lacks `systemd` is reported as blocked rather than rewritten, because where systemd belongs depends on the
 * features. A database with no line gets `db: files systemd` (authselect 1.2 takes such maps from user-nsswitch.conf;
 * the profile's line wins there too).
 */
export function addSystemdToProfileNsswitch(template: string): NsswitchEdit {
  return editNssLines(template, {
    everyLine: true,
    // `}systemd` or `:systemd` inside a template expression counts as listed.
    listed: (line) => /(^|[\s}:])systemd(\s|\[|\{|$)/.test(line.replace(/^[^:]*:/, ' ').replace(/#.*/, '')),
    rewrite: (line, items) => (line.includes('{') ? undefined : withSystemd(items)),
    pad: 12,
  });
}
