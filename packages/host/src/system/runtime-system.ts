/*
 * The one door from the runtime to the machine: processes (always an
 * argument array, never a shell) and files. Unit tests pass a fake.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { DeadlineError } from '@keymaker/core';

export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ProcessOptions {
  input?: string;
  /** Kill the process after this long (the result then has code 124). Default 30 s. */
  timeoutMs?: number;
  /**
   * The command's deadline (execa's model): when it fires, the child gets SIGTERM, then SIGKILL
   * after killGraceMs, and run() rejects with the signal's reason once the child is gone (never
   * while it may still be changing /etc/passwd). An already-fired signal starts nothing.
   */
  signal?: AbortSignal;
  /** Between SIGTERM and SIGKILL on abort. Default 1 s. */
  killGraceMs?: number;
  /** Called with the child's pid once it is started (tests). */
  onSpawn?: (pid: number) => void;
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
  const signal = options.signal;
  const abortReason = () =>
    signal?.reason instanceof Error ? signal.reason : new DeadlineError(`${command} was stopped: its deadline passed`);
  if (signal?.aborted) return Promise.reject(abortReason());
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // C locale: parsed output must not depend on the admin's language.
      env: { PATH: SYSTEM_PATH, LANG: 'C', LC_ALL: 'C' },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    const onAbort = () => {
      aborted = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), options.killGraceMs ?? 1000);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
    };
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      done();
      if (aborted) return reject(abortReason());
      resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` });
    });
    // Aborted: settle when the child itself has exited, even if something it started still holds its pipes.
    child.on('exit', () => {
      if (aborted) {
        done();
        reject(abortReason());
      }
    });
    child.on('close', (code, exitSignal) => {
      done();
      if (aborted) return reject(abortReason());
      resolve({ code: timedOut ? 124 : (code ?? (exitSignal ? 128 : 1)), stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** `sys` with every command it runs under `signal` (the command's overall deadline). */
export function withAbortSignal(sys: RuntimeSystem, signal: AbortSignal): RuntimeSystem {
  return {
    run: (argv, options = {}) =>
      sys.run(argv, { ...options, signal: options.signal ? AbortSignal.any([signal, options.signal]) : signal }),
    readFile: (path) => sys.readFile(path),
  };
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
