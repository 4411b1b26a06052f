/*
 * Where the login-time commands report what they decided. sshd discards the
 * lookup's stderr, so decisions go to syslog (facility authpriv, tag keymaker,
 * with the pid): journald or rsyslog put them next to sshd's own lines.
 * Messages hold names, fingerprints and reasons; never key bodies or credentials.
 */
import { runProcess, type ProcessOptions, type ProcessResult } from './runtime-system';

export type LogLevel = 'info' | 'notice' | 'warning' | 'err';

export interface Syslog {
  log(level: LogLevel, message: string): void;
  /**
   * Resolves once every message so far has been handed over (call before exiting), or after
   * `timeoutMs`: then the messages not yet written are dropped (counted), never waited for.
   */
  flush(timeoutMs?: number): Promise<void>;
  /** Messages that could not be written in time (or at all). */
  dropped?(): number;
}

/** How long one logger(1) may take before its message is dropped, when flush gives no bound. */
export const SYSLOG_WRITE_TIMEOUT_MS = 2000;

export interface LoggerSyslogOptions {
  /** Unix socket instead of /dev/log (tests: a listener inside the sandbox). */
  socket?: string;
  /** Also copy each line to this sink (e.g. stderr for interactive runs). */
  echo?: (line: string) => void;
  run?: (argv: string[], options?: ProcessOptions) => Promise<ProcessResult>;
  pid?: number;
}

/** One line, printable, bounded: a user name or an API message must not forge log lines. */
export function sanitizeLogMessage(message: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = message.replace(/[\x00-\x1f\x7f]/g, ' ');
  return clean.length > 900 ? `${clean.slice(0, 897)}...` : clean;
}

/**
 * Spawns util-linux logger(1) per message (argument array; the message comes after "--"). log()
 * never waits: a stalled /dev/log (a full datagram queue, a reader that never reads) blocks only
 * the logger process, which flush kills when its bound passes; that message is dropped and counted.
 */
export function createLoggerSyslog(options: LoggerSyslogOptions = {}): Syslog & { dropped(): number } {
  const run = options.run ?? runProcess;
  const pid = options.pid ?? process.pid;
  const pending = new Map<Promise<unknown>, AbortController>();
  let dropped = 0;
  return {
    log(level, message) {
      const line = sanitizeLogMessage(message);
      options.echo?.(`keymaker: ${line}`);
      const argv = ['logger', '-p', `authpriv.${level}`, '-t', 'keymaker', `--id=${pid}`];
      if (options.socket) argv.push('--socket', options.socket);
      argv.push('--', line);
      // A logging failure must never change a login decision; it is dropped.
      const controller = new AbortController();
      const done: Promise<unknown> = run(argv, {
        timeoutMs: SYSLOG_WRITE_TIMEOUT_MS,
        signal: controller.signal,
        killGraceMs: 100,
      }).then(
        (result) => {
          if (result.code !== 0) dropped += 1;
        },
        () => {
          dropped += 1;
        },
      );
      pending.set(done, controller);
      void done.finally(() => pending.delete(done));
    },
    async flush(timeoutMs) {
      const all = Promise.all([...pending.keys()]);
      if (timeoutMs === undefined) {
        await all;
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, timeoutMs))));
      await Promise.race([all, expired]);
      clearTimeout(timer);
      // Past the bound: kill what is left (each counts as dropped once its logger is gone).
      const left = [...pending.entries()];
      for (const [, controller] of left) controller.abort();
      await Promise.all(left.map(([done]) => done));
    },
    dropped: () => dropped,
  };
}

/** Keeps lines in memory (tests) and optionally echoes them. */
export function createMemorySyslog(): Syslog & { lines: { level: LogLevel; message: string }[] } {
  const lines: { level: LogLevel; message: string }[] = [];
  return {
    lines,
    log(level, message) {
      lines.push({ level, message: sanitizeLogMessage(message) });
    },
    async flush() {},
    dropped: () => 0,
  };
}
