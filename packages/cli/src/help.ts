/*
 * The one command table: group, synopsis, examples and argument names of every
 * command. Help (grouped listing, per-command usage and examples), usage
 * errors and the man page are all generated from it plus each command's
 * yargs description.
 */
import type { ArgumentsCamelCase, Argv } from 'yargs';

export type CommandGroup = 'client' | 'host' | 'admin' | 'other';

export interface CommandDoc {
  group: CommandGroup;
  /** The usage line after "keymaker ". */
  synopsis: string;
  /** [command line, what it does]; at least one per command. */
  examples: Array<[string, string]>;
  /** What a required positional or option is, for "X needs ..." errors. */
  needs?: Record<string, string>;
}

const KEY_ID = { id: 'a key ID (KEY_ID; see "keymaker list_keys")' };
const USER = { user: 'a Linux user name (USER)' };

export const COMMAND_TABLE: Record<string, CommandDoc> = {
  upload_key: {
    group: 'client',
    synopsis: 'upload_key [--identity FILE] [--user USER]',
    examples: [
      ['keymaker upload_key', 'upload the one key in ssh-agent to your own IAM user'],
      ['keymaker upload_key --identity ~/.ssh/id_ed25519.pub --user alice', "upload a key file to alice's IAM user"],
    ],
  },
  list_keys: {
    group: 'client',
    synopsis: 'list_keys [--user USER]',
    examples: [
      ['keymaker list_keys --user alice', "alice's keys as a table"],
      ['keymaker list_keys --json', 'your own keys as JSON'],
    ],
  },
  enable_key: {
    group: 'client',
    synopsis: 'enable_key KEY_ID [--user USER]',
    examples: [['keymaker enable_key APKAEXAMPLEEXAMPLE12 --user alice', 'let the key log in again']],
    needs: KEY_ID,
  },
  disable_key: {
    group: 'client',
    synopsis: 'disable_key KEY_ID [--user USER]',
    examples: [['keymaker disable_key APKAEXAMPLEEXAMPLE12 --user alice', 'stop the key at the next login']],
    needs: KEY_ID,
  },
  delete_key: {
    group: 'client',
    synopsis: 'delete_key KEY_ID [--user USER]',
    examples: [['keymaker delete_key APKAEXAMPLEEXAMPLE12', 'delete one of your own keys']],
    needs: KEY_ID,
  },
  install: {
    group: 'host',
    synopsis: 'install [--user NAME] [--force] [--dry-run] [options]',
    examples: [
      ['keymaker install --dry-run', 'show what install would write'],
      ['keymaker install', 'set up this host (as root)'],
    ],
  },
  uninstall: {
    group: 'host',
    synopsis: 'uninstall [--dry-run]',
    examples: [['keymaker uninstall', 'remove what install wrote (as root)']],
  },
  get_authorized_keys: {
    group: 'host',
    synopsis: 'get_authorized_keys USER [FINGERPRINT]',
    examples: [['keymaker get_authorized_keys alice', "alice's authorized_keys lines, as sshd sees them"]],
    needs: USER,
  },
  get_uid: {
    group: 'host',
    synopsis: 'get_uid USER',
    examples: [['keymaker get_uid alice', 'the UID alice gets on every host']],
    needs: USER,
  },
  get_groups: {
    group: 'host',
    synopsis: 'get_groups USER',
    examples: [['keymaker get_groups alice --json', "alice's Linux groups with their GIDs"]],
    needs: USER,
  },
  sync_groups: {
    group: 'host',
    synopsis: 'sync_groups [--dry-run] [--config FILE]',
    examples: [['keymaker sync_groups --dry-run', 'show which Linux groups would change']],
  },
  status: {
    group: 'host',
    synopsis: 'status [--config FILE] [--sshd PATH] [--skip-sshd] [--json]',
    examples: [
      ['keymaker status', "check this host's config, credentials, role config, sshd and install"],
      ['keymaker status --json --skip-sshd', 'the same as JSON, without sshd -T (a container without sshd)'],
    ],
  },
  agent: {
    group: 'host',
    synopsis: 'agent [--config FILE] [--userdb-socket PATH] [--keys-socket PATH] [--refresh-seconds N]',
    examples: [
      ['keymaker agent', 'serve IAM users to NSS and keys to sshd until SIGTERM (SIGHUP re-reads the config)'],
      ['keymaker agent --refresh-seconds 60', 'the same, revoking removed IAM users within a minute'],
    ],
  },
  configure: {
    group: 'admin',
    synopsis: 'configure --instance-iam-role ROLE [options]',
    examples: [
      ['keymaker configure --instance-iam-role web --dry-run', 'show the IAM changes for the role web'],
      ['keymaker configure --instance-iam-role web --require-iam-group ssh_users', 'only ssh_users members may log in'],
    ],
    needs: { 'instance-iam-role': '--instance-iam-role ROLE (the instance role name or ARN)' },
  },
  completion: {
    group: 'other',
    synopsis: 'completion bash|zsh',
    examples: [
      ['keymaker completion bash >> ~/.bashrc', 'complete keymaker commands and options in bash'],
      ['keymaker completion zsh > "${fpath[1]}/_keymaker"', 'the same for zsh'],
    ],
    needs: { shell: 'a shell name (bash or zsh)' },
  },
  help: {
    group: 'other',
    synopsis: 'help [COMMAND]',
    examples: [['keymaker help upload_key', 'this help for upload_key (same as keymaker upload_key --help)']],
  },
};

export const GROUP_TITLES: Record<CommandGroup, string> = {
  client: 'Client commands (run from your own computer):',
  host: 'Host commands (run on an instance):',
  admin: 'Admin commands (run once by an administrator):',
  other: 'Other commands:',
};

export const HELP_DESCRIPTION = 'Show help for a command (same as COMMAND --help)';

/** Help width: the terminal's columns (or $COLUMNS), at most 100; 80 when unknown (not a TTY). */
export function helpWidth(
  columns: number | undefined = process.stdout.columns,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const fromEnv = Number(env.COLUMNS);
  const width = columns || (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 80);
  return Math.max(40, Math.min(100, width));
}

/** A registered command as the help and the man page show it. */
export interface RegisteredCommand {
  name: string;
  aliases: string[];
  description: string;
  /** Positionals in order, from the yargs command string; required ones first. */
  positionals: Array<{ name: string; required: boolean }>;
  doc: CommandDoc;
}

/** Splits a yargs command string (`enable_key <id> [user]`). */
export function parseCommandString(command: string): { name: string; positionals: RegisteredCommand['positionals'] } {
  const [name = '', ...rest] = command.trim().split(/\s+/);
  const positionals = rest.map((token) => ({
    name: token.replace(/^[<[]|[>\]]$/g, '').replace(/\.\.\.$/, ''),
    required: token.startsWith('<'),
  }));
  return { name, positionals };
}

export interface Documented {
  commands: RegisteredCommand[];
  /** The command whose builder ran last, i.e. the one being parsed (for usage errors). */
  active(): RegisteredCommand | undefined;
}

/**
 * What a command group registers its commands on: yargs' own `command(names, description, builder,
 * handler)`, typed the same way (the handler's arguments are what the builder declares), and
 * documented from COMMAND_TABLE on the way.
 */
export interface CommandRegistry<T> {
  command<U>(
    names: string | readonly string[],
    description: string,
    builder: (y: Argv<T>) => Argv<U>,
    handler: (args: ArgumentsCamelCase<NoInfer<U>>) => void | Promise<void>,
  ): CommandRegistry<T>;
}

/**
 * Registers every command of `groups` on `cli`, each also documented from COMMAND_TABLE: the
 * command's help gets the table's synopsis and examples, and the registry records name, aliases
 * and description for the grouped listing and the man page. A command missing from the table is
 * a programming error.
 */
export function documentCommands<T>(
  cli: Argv<T>,
  groups: ReadonlyArray<(registry: CommandRegistry<T>) => CommandRegistry<T>>,
  scriptName = 'keymaker',
): { cli: Argv<T>; docs: Documented } {
  const commands: RegisteredCommand[] = [];
  let active: RegisteredCommand | undefined;
  let registered = cli;
  const registry: CommandRegistry<T> = {
    command(cmd, description, builder, handler) {
      const names = typeof cmd === 'string' ? [cmd] : [...cmd];
      const { name, positionals } = parseCommandString(names[0] ?? '');
      const doc = COMMAND_TABLE[name];
      if (!doc) throw new Error(`command ${name} has no entry in COMMAND_TABLE (packages/cli/src/help.ts)`);
      const entry: RegisteredCommand = {
        name,
        aliases: names.slice(1).map((alias) => parseCommandString(alias).name),
        description,
        positionals,
        doc,
      };
      commands.push(entry);
      const documentedBuilder = (y: Argv<T>) => {
        active = entry;
        let out = y.usage(`${scriptName} ${doc.synopsis}\n\n${entry.description}`);
        // kubectl's layout: a comment line, then the command on a line of its own (never wrapped into a column).
        for (const [line, what] of doc.examples) out = out.example(`# ${what}`, '').example(line, '');
        return builder(out);
      };
      registered = registered.command(cmd, description, documentedBuilder, handler);
      return registry;
    },
  };
  for (const register of groups) register(registry);
  return { cli: registered, docs: { commands, active: () => active } };
}

/** The grouped command listing that replaces yargs' flat "Commands:" section. */
export function groupedCommandListing(commands: RegisteredCommand[], width: number): string {
  const rows = [...commands.map((c) => ({ left: c.name, right: c.description, group: c.doc.group }))];
  if (!commands.some((c) => c.name === 'help')) rows.push({ left: 'help', right: HELP_DESCRIPTION, group: 'other' });
  const leftWidth = Math.min(Math.max(...rows.map((r) => r.left.length)), Math.floor(width / 2));
  const sections: string[] = [];
  for (const group of Object.keys(GROUP_TITLES) as CommandGroup[]) {
    const inGroup = rows.filter((r) => r.group === group);
    if (inGroup.length === 0) continue;
    const lines = [GROUP_TITLES[group]];
    for (const row of inGroup) {
      const indent = 2 + leftWidth + 2;
      const wrapped = wrapText(row.right, Math.max(20, width - indent));
      if (row.left.length > leftWidth) {
        lines.push(`  ${row.left}`);
        for (const line of wrapped) lines.push(`${' '.repeat(indent)}${line}`);
      } else {
        lines.push(`  ${row.left.padEnd(leftWidth)}  ${wrapped[0] ?? ''}`.trimEnd());
        for (const line of wrapped.slice(1)) lines.push(`${' '.repeat(indent)}${line}`);
      }
    }
    sections.push(lines.join('\n'));
  }
  sections.push(wrapText('Run "keymaker help COMMAND" for a command\'s options and examples.', width).join('\n'));
  return sections.join('\n\n');
}

export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Replaces yargs' "Commands:" block (up to the next blank line) with the grouped listing. */
export function groupHelpText(help: string, commands: RegisteredCommand[], width: number): string {
  const listing = groupedCommandListing(commands, width);
  const start = help.search(/^Commands:$/m);
  if (start < 0) return help;
  const end = help.indexOf('\n\n', start);
  return `${help.slice(0, start)}${listing}${end < 0 ? '\n' : help.slice(end)}`;
}

/**
 * One line for a yargs validation failure, naming what is missing and where help is:
 * `enable_key needs a key ID (KEY_ID); run "keymaker help enable_key"`.
 */
export function usageErrorLine(message: string, command: RegisteredCommand | undefined): string {
  message = message.replace(/\s*\n\s*/g, ' ').trim(); // yargs' "Invalid values:\n  Argument: ..." on one line
  const helpHint = command ? `run "keymaker help ${command.name}"` : 'run "keymaker help" for the commands';
  if (!command) return `keymaker: ${message}; ${helpHint}`;
  const needs = command.doc.needs ?? {};
  const got = /^Not enough non-option arguments: got (\d+)/.exec(message);
  if (got) {
    const missing = command.positionals.filter((p) => p.required).slice(Number(got[1]));
    const what = missing.map((p) => needs[p.name] ?? p.name.toUpperCase());
    if (what.length > 0) return `keymaker: ${command.name} needs ${what.join(' and ')}; ${helpHint}`;
  }
  const required = /^Missing required arguments?: (.+)$/.exec(message);
  if (required) {
    const what = required[1]!.split(/,\s*/).map((name) => needs[name] ?? `--${name}`);
    return `keymaker: ${command.name} needs ${what.join(' and ')}; ${helpHint}`;
  }
  return `keymaker: ${command.name}: ${message}; ${helpHint}`;
}

/** Shell completion scripts; both ask `keymaker --get-yargs-completions WORDS...` (yargs' completion). */
export function completionScript(shell: 'bash' | 'zsh', scriptName = 'keymaker'): string {
  const fn = `_${scriptName.replace(/[^A-Za-z0-9_]/g, '_')}_completions`;
  if (shell === 'zsh') {
    return [
      `#compdef ${scriptName}`,
      `# zsh completion for ${scriptName}. Install: ${scriptName} completion zsh > "\${fpath[1]}/_${scriptName}"`,
      `# or add to ~/.zshrc: source <(${scriptName} completion zsh)`,
      `${fn}() {`,
      '  local reply',
      '  local si=$IFS',
      `  IFS=$'\\n' reply=($(COMP_CWORD="$((CURRENT-1))" COMP_LINE="$BUFFER" COMP_POINT="$CURSOR" ZSH_NAME=zsh ${scriptName} --get-yargs-completions "\${words[@]}"))`,
      '  IFS=$si',
      "  _describe 'values' reply",
      '}',
      `compdef ${fn} ${scriptName}`,
      '',
    ].join('\n');
  }
  return [
    `# bash completion for ${scriptName}. Install: ${scriptName} completion bash >> ~/.bashrc`,
    `# (or: ${scriptName} completion bash > /etc/bash_completion.d/${scriptName})`,
    `${fn}() {`,
    '  local cur_word type_list',
    '  cur_word="${COMP_WORDS[COMP_CWORD]}"',
    `  type_list=$(SHELL=bash ZSH_NAME= ${scriptName} --get-yargs-completions "\${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null)`,
    '  COMPREPLY=( $(compgen -W "${type_list}" -- "${cur_word}") )',
    '  return 0',
    '}',
    `complete -o bashdefault -o default -F ${fn} ${scriptName}`,
    '',
  ].join('\n');
}
