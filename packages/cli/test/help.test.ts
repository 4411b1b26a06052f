import { expect } from '@jest/globals';
import { createCli, helpText, main, manPage, rewriteHelpCommand } from '../src/main';
import { COMMAND_TABLE, GROUP_TITLES, helpWidth } from '../src/help';
import { EXIT_CODES } from '@keymaker/core';

const registered = createCli([], { width: 80 }).docs.commands;
const names = registered.map((c) => c.name);

class Exit extends Error {
  constructor(readonly code: number | undefined) {
    super(`exit ${code}`);
  }
}

/** Runs main() in-process; process.exit becomes a thrown Exit, stdout/stderr are captured. */
async function run(argv: string[]): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  const exit = jest.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exit(code as number | undefined);
  });
  const before = process.exitCode;
  let code: number | undefined;
  try {
    await main(argv);
    code = (process.exitCode as number | undefined) ?? 0;
  } catch (error) {
    if (!(error instanceof Exit)) throw error;
    code = error.code;
  } finally {
    out.mockRestore();
    err.mockRestore();
    exit.mockRestore();
    process.exitCode = before;
  }
  return { code, stdout, stderr };
}

describe('help', () => {
  it('every command is in the command table and its help shows its examples', async () => {
    expect(names).toEqual(
      expect.arrayContaining([
        'upload_key',
        'list_keys',
        'enable_key',
        'disable_key',
        'delete_key',
        'get_uid',
        'get_groups',
        'get_authorized_keys',
        'sync_groups',
        'install',
        'uninstall',
        'configure',
        'completion',
      ]),
    );
    for (const name of names) {
      const text = await helpText([name, '--help'], { width: 100 });
      expect(text.startsWith(`keymaker ${COMMAND_TABLE[name]!.synopsis}\n`)).toBe(true);
      expect(text).toContain('\nExamples:\n');
      expect(COMMAND_TABLE[name]!.examples.length).toBeGreaterThan(0);
      for (const [line] of COMMAND_TABLE[name]!.examples) expect(text).toContain(`\n  ${line}\n`.replace(/\n$/, ''));
    }
  });

  it('"help CMD", "CMD --help" and "CMD -h" print the same text on stdout, exit 0', async () => {
    expect(rewriteHelpCommand(['help', 'enable_key'])).toEqual(['enable_key', '--help']);
    const viaHelp = await run(['help', 'enable_key']);
    const viaFlag = await run(['enable_key', '--help']);
    const viaShort = await run(['enable_key', '-h']);
    expect(viaHelp).toEqual({ code: 0, stdout: expect.stringContaining('keymaker enable_key KEY_ID'), stderr: '' });
    expect(viaFlag).toEqual(viaHelp);
    expect(viaShort).toEqual(viaHelp);
  });

  it('top-level help lists every command once, grouped as client / host / admin commands', async () => {
    const text = (await run(['help'])).stdout;
    expect(text).not.toMatch(/^Commands:$/m);
    const section = (title: string) => {
      const start = text.indexOf(`${title}\n`);
      expect(start).toBeGreaterThanOrEqual(0);
      return text.slice(start, text.indexOf('\n\n', start));
    };
    expect(section(GROUP_TITLES.client)).toMatch(
      /upload_key[\s\S]*list_keys[\s\S]*enable_key[\s\S]*disable_key[\s\S]*delete_key/,
    );
    expect(section(GROUP_TITLES.host)).toMatch(
      /get_authorized_keys[\s\S]*get_uid[\s\S]*get_groups[\s\S]*sync_groups[\s\S]*install[\s\S]*uninstall/,
    );
    expect(section(GROUP_TITLES.admin)).toMatch(/configure/);
    expect(section(GROUP_TITLES.other)).toMatch(/completion[\s\S]*help/);
    for (const name of names) expect(text.match(new RegExp(`^  ${name} `, 'gm'))).toHaveLength(1);
    expect(await run(['-h'])).toEqual({ code: 0, stdout: text, stderr: '' });
  });

  it('keymaker with no arguments prints the same listing on stderr and exits 1', async () => {
    const none = await run([]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain(GROUP_TITLES.client);
  });

  it('help is wrapped to the width: terminal columns, else $COLUMNS, else 80; at most 100', async () => {
    expect(helpWidth(undefined, {})).toBe(80);
    expect(helpWidth(undefined, { COLUMNS: '72' })).toBe(72);
    expect(helpWidth(132, { COLUMNS: '72' })).toBe(100);
    expect(helpWidth(90, {})).toBe(90);
    for (const width of [60, 100]) {
      for (const args of [['--help'], ['install', '--help'], ['configure', '--help']]) {
        const long = (await helpText(args, { width })).split('\n').filter((line) => line.length > width);
        expect({ args, width, long }).toEqual({ args, width, long: [] });
      }
    }
  });
});

describe('usage errors', () => {
  it.each([
    [
      ['enable_key'],
      'keymaker: enable_key needs a key ID (KEY_ID; see "keymaker list_keys"); run "keymaker help enable_key"',
    ],
    [
      ['disable-key'],
      'keymaker: disable_key needs a key ID (KEY_ID; see "keymaker list_keys"); run "keymaker help disable_key"',
    ],
    [['get_uid'], 'keymaker: get_uid needs a Linux user name (USER); run "keymaker help get_uid"'],
    [
      ['configure'],
      'keymaker: configure needs --instance-iam-role ROLE (the instance role name or ARN); run "keymaker help configure"',
    ],
    [['completion'], 'keymaker: completion needs a shell name (bash or zsh); run "keymaker help completion"'],
    [['list_keys', '--bogus'], 'keymaker: list_keys: Unknown argument: bogus; run "keymaker help list_keys"'],
    [
      ['completion', 'fish'],
      'keymaker: completion: Invalid values: Argument: shell, Given: "fish", Choices: "bash", "zsh"; run "keymaker help completion"',
    ],
  ])('%j: one line naming what is missing, exit USAGE', async (argv, line) => {
    expect(await run(argv)).toEqual({ code: EXIT_CODES.USAGE, stdout: '', stderr: `${line}\n` });
  });
});

describe('completion', () => {
  it('prints a bash and a zsh script on stdout that ask keymaker --get-yargs-completions', async () => {
    const bash = await run(['completion', 'bash']);
    expect(bash).toEqual({
      code: 0,
      stdout: expect.stringContaining('complete -o bashdefault -o default -F _keymaker_completions keymaker'),
      stderr: '',
    });
    const zsh = await run(['completion', 'zsh']);
    expect(zsh.stdout.startsWith('#compdef keymaker\n')).toBe(true);
    expect(zsh.stdout).toContain('--get-yargs-completions');
  });
});

describe('man page', () => {
  it('is roff (man(7)) and lists every command, the global options and every exit code', async () => {
    const page = await manPage();
    expect(page.startsWith('.TH KEYMAKER 1 ')).toBe(true);
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'GLOBAL OPTIONS', 'EXIT STATUS'])
      expect(page).toContain(`\n.SH ${section}\n`);
    for (const name of [...names, 'help']) expect(page).toMatch(new RegExp(`^\\.B keymaker ${name}( |$)`, 'm'));
    for (const code of Object.values(EXIT_CODES)) expect(page).toMatch(new RegExp(`^\\.B ${code}\\n`, 'm'));
    // Help text never leaks a line that roff would read as a request.
    const requests = page
      .split('\n')
      .filter((line) => /^[.']/.test(line))
      .map((line) => line.split(/\s/)[0]);
    expect(new Set(requests)).toEqual(
      new Set(['.TH', '.SH', '.SS', '.B', '.I', '.BR', '.br', '.PP', '.TP', '.RS', '.RE', '.nf', '.fi']),
    );
    expect(page).toContain('\\-\\-instance\\-iam\\-role');
  });
});
