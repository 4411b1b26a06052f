// Test driver for abuse.e2e.test.ts, bundled with esbuild and run as root INSIDE the sandbox:
//   node driver.mjs processes NAMES.json CONCURRENCY   real hook processes (the installed pam_exec target)
//   node driver.mjs in-process NAMES.json CONCURRENCY  pamCreateAccountCommand called in this process
// An optional 4th argument is the client address (PAM_RHOST; default 203.0.113.9).
// Both use the real state file in /run/keymaker, getent, useradd and IAM (through the test's proxy).
// Prints {"exit code": count, ...} as JSON.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { flushHostCommandSyslog, hostCommandSyslog, pamCreateAccountCommand } from '../src/commands/host-commands';
import { DEFAULT_PATHS } from '../src/system/paths';

function runHook(name: string, rhost: string): Promise<number> {
  return new Promise((resolve) => {
    // What pam_exec passes: PAM items in the environment, no arguments.
    const child = spawn(DEFAULT_PATHS.pamCreateAccountCommand, [], {
      env: { PAM_TYPE: 'auth', PAM_USER: name, PAM_RHOST: rhost, PAM_SERVICE: 'sshd' },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    child.on('error', () => resolve(-1));
    child.on('close', (code) => resolve(code ?? -1));
  });
}

async function main(): Promise<void> {
  const [mode, namesFile, concurrencyText, rhostArg] = process.argv.slice(2);
  const rhost = rhostArg ?? '203.0.113.9';
  const names = JSON.parse(fs.readFileSync(namesFile!, 'utf8')) as string[];
  const concurrency = Number(concurrencyText ?? '4');
  const codes: Record<string, number> = {};
  let next = 0;
  const quiet = { stdout: () => undefined, stderr: () => undefined };
  // As the host entry runs the hook: its own syslog writer, flushed after.
  async function inProcess(name: string): Promise<number> {
    const syslog = hostCommandSyslog();
    const { exitCode } = await pamCreateAccountCommand(
      { PAM_TYPE: 'auth', PAM_USER: name, PAM_RHOST: rhost, PAM_SERVICE: 'sshd' },
      { ...quiet, syslog },
    );
    await flushHostCommandSyslog(syslog, () => undefined);
    return exitCode;
  }
  async function worker(): Promise<void> {
    while (next < names.length) {
      const name = names[next++]!;
      const code = mode === 'processes' ? await runHook(name, rhost) : await inProcess(name);
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(`${JSON.stringify(codes)}\n`);
  process.exit(0);
}

void main();
