import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODES } from '@keymaker/core';
import { KEYMAKER_BIN, keymaker } from './cli-helpers';

// CLI conventions, through the built CLI as a user runs it: help, usage errors, completion, man page.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
const COMMANDS = [
  'upload_key',
  'list_keys',
  'enable_key',
  'disable_key',
  'delete_key',
  'get_authorized_keys',
  'get_uid',
  'get_groups',
  'sync_groups',
  'install',
  'uninstall',
  'configure',
  'completion',
];

let bin: string;
beforeAll(() => {
  // A `keymaker` on PATH, as the completion script calls it.
  bin = mkdtempSync(join(tmpdir(), 'km-bin-'));
  writeFileSync(join(bin, 'keymaker'), `#!/bin/sh\nexec "${process.execPath}" "${KEYMAKER_BIN}" "$@"\n`);
  chmodSync(join(bin, 'keymaker'), 0o755);
});
afterAll(() => rmSync(bin, { recursive: true, force: true }));

describe('help and usage errors', () => {
  it('help CMD and -h work for the host commands the lean entry runs too', async () => {
    const viaHelp = await keymaker(['help', 'get_authorized_keys'], env);
    expect(viaHelp).toMatchObject({ code: 0, stderr: '' });
    expect(viaHelp.stdout).toMatch(/^keymaker get_authorized_keys USER \[FINGERPRINT\]\n/);
    expect(viaHelp.stdout).toContain('\nExamples:\n');
    expect(await keymaker(['get_authorized_keys', '-h'], env)).toEqual(viaHelp);
  });

  it('help is wrapped to $COLUMNS when stdout is not a terminal', async () => {
    const help = await keymaker(['help', 'install'], { ...env, COLUMNS: '64' });
    expect(help.code).toBe(0);
    expect(help.stdout.split('\n').filter((line) => line.length > 64)).toEqual([]);
  });

  it('a missing argument is named in one line on stderr, exit USAGE', async () => {
    expect(await keymaker(['enable_key'], env)).toEqual({
      code: EXIT_CODES.USAGE,
      stdout: '',
      stderr:
        'keymaker: enable_key needs a key ID (KEY_ID; see "keymaker list_keys"); run "keymaker help enable_key"\n',
    });
  });
});

describe('shell completion', () => {
  it('the bash script is valid bash, and completing "keymaker li" offers list_keys', async () => {
    const script = await keymaker(['completion', 'bash'], env);
    expect(script).toMatchObject({ code: 0, stderr: '' });
    const file = join(bin, 'keymaker.bash');
    writeFileSync(file, script.stdout);
    expect(spawnSync('bash', ['-n', file]).status).toBe(0);
    const complete = (words: string) =>
      execFileSync(
        'bash',
        [
          '-c',
          `source "${file}"; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _keymaker_completions; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        {
          env: { ...env, PATH: `${bin}:${env.PATH}` },
          encoding: 'utf8',
        },
      )
        .split('\n')
        .filter(Boolean);
    expect(complete('keymaker li')).toEqual(['list_keys']);
    expect(complete('keymaker list_keys --us')).toEqual(['--user']);
  });

  it('the zsh script is a compdef function over the same completions', async () => {
    const script = await keymaker(['completion', 'zsh'], env);
    expect(script.code).toBe(0);
    expect(script.stdout.startsWith('#compdef keymaker\n')).toBe(true);
    expect(script.stdout).toContain('keymaker --get-yargs-completions');
  });
});

describe('man page', () => {
  const page = join(KEYMAKER_BIN, '..', 'keymaker.1');

  it('the build writes dist/keymaker.1, which lists every command', () => {
    expect(existsSync(page)).toBe(true);
    const text = readFileSync(page, 'utf8');
    expect(text.startsWith('.TH KEYMAKER 1 ')).toBe(true);
    for (const name of COMMANDS) expect(text).toMatch(new RegExp(`^\\.B keymaker ${name}( |$)`, 'm'));
    const pkg = JSON.parse(readFileSync(join(KEYMAKER_BIN, '..', '..', 'package.json'), 'utf8')) as { man?: unknown };
    // An array: npm's bin-links links only an array of man pages into {prefix}/share/man on a global install.
    expect(pkg.man).toEqual(['./dist/keymaker.1']);
  });

  const man = spawnSync('man', ['--version']);
  (man.status === 0 ? it : it.skip)('man -l renders it without warnings', () => {
    const out = spawnSync('man', ['-l', '--warnings', page], {
      encoding: 'utf8',
      env: { ...env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' },
    });
    expect(out.status).toBe(0);
    expect(out.stderr).toBe('');
    expect(out.stdout).toContain('EXIT STATUS');
  });
});
