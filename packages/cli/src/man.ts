import { exitCodeRows } from './exit-codes';
import { GROUP_TITLES, HELP_DESCRIPTION, type CommandGroup, type RegisteredCommand } from './help';

/** Escapes text for roff: backslashes, hyphens (so options copy-paste as ASCII), leading control characters. */
export function roffEscape(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

export interface ManPageInput {
  version: string;
  /** One sentence: what keymaker is. */
  summary: string;
  /** The top-level help text (grouped), as `keymaker --help` prints it. */
  topHelp: string;
  commands: RegisteredCommand[];
  /** `keymaker CMD --help` for each command, by name. */
  commandHelp: Record<string, string>;
}

/** keymaker(1) in roff (man(7) macros), from the same help text the CLI prints. */
export function renderManPage(input: ManPageInput): string {
  const out: string[] = [];
  const para = (text: string) => out.push('.PP', roffEscape(text));
  const preformatted = (text: string) => out.push('.RS 4', '.nf', roffEscape(text.replace(/\s+$/, '')), '.fi', '.RE');

  out.push(`.TH KEYMAKER 1 "" "keymaker ${roffEscape(input.version)}" "User Commands"`);
  out.push('.SH NAME', `keymaker \\- ${roffEscape(input.summary)}`);
  out.push('.SH SYNOPSIS', '.B keymaker', '.I command', '[options]');
  out.push('.br', '.B keymaker help', '[\\fIcommand\\fR]');
  out.push('.SH DESCRIPTION');
  para(
    'Administrators keep users, SSH public keys and groups in AWS IAM; every host asks IAM at login time whose key may log in, ' +
      'creates the Linux account on first use, and mirrors IAM groups into Linux groups.',
  );
  para(
    'Data goes to standard output; errors are one line on standard error, with a distinct exit status (see EXIT STATUS). ' +
      'Commands that report a result print one JSON document with --json.',
  );
  const globalOptions = section(input.topHelp, 'Options');
  out.push('.SH COMMANDS');
  for (const group of Object.keys(GROUP_TITLES) as CommandGroup[]) {
    const inGroup = input.commands.filter((c) => c.doc.group === group);
    if (group === 'other' && !inGroup.some((c) => c.name === 'help')) {
      inGroup.push({
        name: 'help',
        aliases: [],
        description: HELP_DESCRIPTION,
        positionals: [],
        doc: { group: 'other', synopsis: 'help [COMMAND]', examples: [] },
      });
    }
    if (inGroup.length === 0) continue;
    out.push(`.SS ${roffEscape(GROUP_TITLES[group].replace(/:$/, ''))}`);
    for (const command of inGroup) {
      out.push('.TP', `.B keymaker ${roffEscape(command.doc.synopsis)}`, roffEscape(command.description));
      if (command.aliases.length) out.push('.br', `Also spelled: ${roffEscape(command.aliases.join(', '))}.`);
      const help = input.commandHelp[command.name];
      if (help) preformatted(withoutGlobalOptions(fromFirstSection(help), globalOptions));
    }
  }
  out.push('.SH GLOBAL OPTIONS', 'Every command takes these.');
  preformatted(globalOptions.replace(/^Options:\n/, ''));
  out.push('.SH EXIT STATUS');
  out.push('.TP', '.B 0', 'success');
  for (const row of exitCodeRows()) out.push('.TP', `.B ${row.code}`, `${row.name}: ${roffEscape(row.meaning)}`);
  out.push('.SH ENVIRONMENT');
  out.push(
    '.TP',
    '.B AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ...',
    'the usual AWS SDK settings, as the AWS CLI reads them.',
  );
  out.push('.TP', '.B COLUMNS', 'help width when standard output is not a terminal (at most 100).');
  out.push('.SH FILES');
  out.push('.TP', '.I /etc/keymaker/config.json', 'host configuration written by \\fBkeymaker install\\fR.');
  out.push('.SH SEE ALSO', '.BR sshd_config (5),', '.BR pam_exec (8)');
  return `${out.join('\n')}\n`;
}

const OPTION_LINE = /^\s{2,8}(?:-\w, )?(--[\w-]+)/;

/** The block of a yargs help text that starts with "NAME:" up to the next blank line. */
export function section(help: string, name: string): string {
  const start = help.search(new RegExp(`^${name}:$`, 'm'));
  if (start < 0) return '';
  const end = help.indexOf('\n\n', start);
  return end < 0 ? help.slice(start) : help.slice(start, end);
}

/** A command's help from its first section (Positionals:, Options:, ...): the usage line and description are the man page's own. */
export function fromFirstSection(help: string): string {
  const start = help.search(/^[A-Z][A-Za-z ]*:$/m);
  return start < 0 ? help : help.slice(start);
}

/** Drops the options (with their continuation lines) that the global options section already lists. */
export function withoutGlobalOptions(help: string, globalOptions: string): string {
  // An option's name and first words identify it whatever the column widths (so install's own --profile stays).
  const key = (line: string) => line.trim().split(/\s+/).slice(0, 5).join(' ');
  const globals = new Set(
    globalOptions
      .split('\n')
      .filter((line) => OPTION_LINE.test(line))
      .map(key),
  );
  const kept: string[] = [];
  let dropping = false;
  for (const line of help.split('\n')) {
    if (OPTION_LINE.test(line)) dropping = globals.has(key(line));
    else if (!/^\s{9,}\S/.test(line)) dropping = false;
    if (!dropping) kept.push(line);
  }
  return kept.join('\n').replace(/^Options:\n(?=\n|$)/m, '');
}
