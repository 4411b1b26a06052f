import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';

/**
 * The one door from the runtime to the machine: processes (always an
 * argument array, never a shell) and files. Unit tests pass a fake.
 */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ProcessOptions {
  input?: string;
  /** Kill the process after this long (the result then has code 124). Default 30 s. */
  timeoutMs?: number;
}

export interface RuntimeSystem {
  run(argv: string[], options?: ProcessOptions): Promise<ProcessResult>;
  /** The file's text, or undefined when it does not exist. */
  readFile(path: string): Promise<string | undefined>;
}

/** A fixed PATH: the runtime runs under sshd/PAM/cron, whose environments differ. */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function runProcess(argv: string[], options: ProcessOptions = {}): Promise<ProcessResult> {
  const [command, ...args] = argv;
  if (!command) return Promise.reject(new TypeError('empty command'));
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // C locale: parsed output must not depend on the admin's language.
      env: { PATH: SYSTEM_PATH, LANG: 'C', LC_ALL: 'C' },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? 124 : (code ?? (signal ? 128 : 1)), stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export const realRuntimeSystem: RuntimeSystem = {
  run: runProcess,
  async readFile(path) {
    try {
      return await fs.readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  },
};
