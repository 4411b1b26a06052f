import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EXIT_CODES, HostError, InputError, withFailureOutput } from '@keymaker/core';
import type { LogLevel, Syslog } from '@keymaker/host';
import { runBoundary } from '../src/run';
import { runHostCommand } from '../src/host-entry';
import { hostCommandName, LEAN_FROM_LAUNCHER } from '../src/host-command-names';

// The one command boundary (run.ts) and the lean host entry that goes through it.

function sink(): { write: (text: string) => void; text: () => string } {
  const chunks: string[] = [];
  return { write: (text) => chunks.push(text), text: () => chunks.join('') };
}

function memorySyslog(): Syslog & { lines: Array<{ level: LogLevel; message: string }> } {
  const lines: Array<{ level: LogLevel; message: string }> = [];
  return { lines, log: (level, message) => lines.push({ level, message }), flush: async () => {}, dropped: () => 0 };
}

describe('runBoundary', () => {
  it('returns what the body returns, 0 for nothing', async () => {
    expect(await runBoundary(async () => 7)).toBe(7);
    expect(await runBoundary(async () => undefined)).toBe(0);
  });

  it("maps a KeymakerError to its exit code and formatError's one line, no stack", async () => {
    const stderr = sink();
    const code = await runBoundary(
      async () => {
        throw new InputError('INVALID_USERNAME', '"Bob!" is not a valid Linux user name');
      },
      { stderr: stderr.write },
    );
    expect(code).toBe(EXIT_CODES.INVALID_USERNAME);
    expect(stderr.text()).toBe('keymaker: "Bob!" is not a valid Linux user name\n');
  });

  it('maps anything else to INTERNAL with the hint to rerun with --debug', async () => {
    const stderr = sink();
    const code = await runBoundary(
      async () => {
        throw new TypeError('x is undefined\nsecond line');
      },
      { stderr: stderr.write },
    );
    expect(code).toBe(EXIT_CODES.INTERNAL);
    expect(stderr.text()).toBe('keymaker: unexpected error: x is undefined (run with --debug for details)\n');
  });

  it("writes a command's result: its stderr lines in order, then its stdout, and its exit code", async () => {
    const stderr = sink();
    const stdout = sink();
    const code = await runBoundary(async () => ({ exitCode: 3, stderr: ['one', 'two'], stdout: '{"a":1}\n' }), {
      stderr: stderr.write,
      stdout: stdout.write,
    });
    expect(code).toBe(3);
    expect(stderr.text()).toBe('one\ntwo\n');
    expect(stdout.text()).toBe('{"a":1}\n');
  });

  it('writes a typed error’s line, then the lines and the data the command attached to it', async () => {
    const stderr = sink();
    const stdout = sink();
    const code = await runBoundary(
      async () => {
        const error = new HostError('LOCKED', 'another sync_groups is running');
        throw withFailureOutput(error, {
          extraLines: ['sync_groups: nothing was changed'],
          stdout: '{"error":"LOCKED"}\n',
        });
      },
      { stderr: stderr.write, stdout: stdout.write },
    );
    expect(code).toBe(EXIT_CODES.LOCKED);
    expect(stderr.text()).toBe('keymaker: another sync_groups is running\nsync_groups: nothing was changed\n');
    expect(stdout.text()).toBe('{"error":"LOCKED"}\n');
  });

  it('keeps the attached lines of an unexpected error too, after the INTERNAL line', async () => {
    const stderr = sink();
    const code = await runBoundary(
      async () => {
        throw withFailureOutput(new TypeError('boom'), { extraLines: ['sync_groups: nothing was changed'] });
      },
      { stderr: stderr.write, stdout: () => undefined },
    );
    expect(code).toBe(EXIT_CODES.INTERNAL);
    expect(stderr.text()).toBe(
      'keymaker: unexpected error: boom (run with --debug for details)\nsync_groups: nothing was changed\n',
    );
  });

  it('adds the stack and the cause’s stack with --debug', async () => {
    const stderr = sink();
    const cause = new Error('EACCES from below');
    const code = await runBoundary(
      async () => {
        throw new HostError('SYSTEM_COMMAND_FAILED', 'useradd failed', { cause });
      },
      { debug: true, stderr: stderr.write },
    );
    expect(code).toBe(EXIT_CODES.SYSTEM_COMMAND_FAILED);
    const lines = stderr.text().split('\n');
    expect(lines[0]).toBe('keymaker: useradd failed');
    expect(lines[1]).toBe('HostError: useradd failed');
    expect(stderr.text()).toMatch(/\n\s+at .*run\.test\.ts/);
    expect(stderr.text()).toContain('caused by: Error: EACCES from below');
  });
});

describe('the lean host entry', () => {
  it('maps a throw from a hook to exitCodeFor, not to INTERNAL', async () => {
    const stderr = sink();
    // pam_create_account writes its first-login text before any work; a failing stdout throws out of the hook.
    const code = await runHostCommand(['pam_create_account'], {
      stdout: () => {
        throw new HostError('SYSTEM_COMMAND_FAILED', 'stdout is gone');
      },
      stderr: stderr.write,
    });
    expect(code).toBe(EXIT_CODES.SYSTEM_COMMAND_FAILED);
    expect(stderr.text()).toBe('keymaker: stdout is gone\n');
  });

  it('logs a hook’s failure to syslog and says it on stderr, with the error’s exit code', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-run-'));
    const configFile = path.join(dir, 'config.json');
    fs.writeFileSync(configFile, '{ not json');
    const syslog = memorySyslog();
    const stderr = sink();
    try {
      const code = await runHostCommand(['sync-groups', '--dry-run', `--config=${configFile}`], {
        syslog,
        stderr: stderr.write,
      });
      expect(code).toBe(EXIT_CODES.INVALID_ARGUMENT);
      expect(syslog.lines.map((line) => line.level)).toEqual(['err']);
      expect(syslog.lines[0]?.message).toMatch(/^cannot read the host config: .*config\.json is not valid JSON/);
      expect(stderr.text()).toMatch(/^keymaker: .*config\.json is not valid JSON.*\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('flushes the syslog writer it made once the outcome is written, not before', async () => {
    const events: string[] = [];
    const syslog = { ...memorySyslog(), flush: async () => void events.push('flush') };
    const code = await runHostCommand(['sync_groups', '--force'], { syslog, stderr: () => void events.push('stderr') });
    expect(code).toBe(EXIT_CODES.USAGE);
    expect(events).toEqual(['stderr', 'flush']);
  });

  it('answers a bad command line with USAGE', async () => {
    const stderr = sink();
    expect(await runHostCommand(['sync_groups', '--force'], { stderr: stderr.write })).toBe(EXIT_CODES.USAGE);
    expect(stderr.text()).toBe('usage: keymaker sync_groups [--dry-run] [--json] [--config PATH]\n');
    expect(await runHostCommand(['nope'], { stderr: stderr.write })).toBe(EXIT_CODES.USAGE);
    expect(stderr.text()).toContain('keymaker: unknown host command "nope"\n');
  });

  it('has one table of host commands, every spelling', () => {
    expect(hostCommandName('get-authorized-keys')).toBe('get_authorized_keys');
    expect(hostCommandName('sync_groups')).toBe('sync_groups');
    expect(hostCommandName('list_keys')).toBeUndefined();
    expect([...LEAN_FROM_LAUNCHER].sort()).toEqual([
      'get_authorized_keys',
      'pam_create_account',
      'pam_efs_home',
      'store_key_bodies',
    ]);
  });
});
