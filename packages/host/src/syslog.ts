import { runProcess, type ProcessOptions, type ProcessResult } from './host-system';

/**
 * Where the login-time commands report what they decided. sshd discards the
 * lookup's stderr, so decisions go to syslog (facility authpriv, tag keymaker,
 * with the pid): journald or rsyslog put them next to sshd's own lines.
 * Messages hold names, fingerprints and reasons; never key bodies or credentials.
 */
export type LogLevel = 'info' | 'notice' | 'warning' | 'err';

export interface Syslog {
  log(level: LogLevel, message: string): void;
  /** Resolves once every message so far has been handed over (call before exiting). */
  flush(): Promise<void>;
}

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

/** Spawns util-linux logger(1) per message (argument array; the message comes after "--"). */
export function createLoggerSyslog(options: LoggerSyslogOptions = {}): Syslog {
  const run = options.run ?? runProcess;
  const pid = options.pid ?? process.pid;
  const pending = new Set<Promise<unknown>>();
  return {
    log(level, message) {
      const line = sanitizeLogMessage(message);
      options.echo?.(`keymaker: ${line}`);
      const argv = ['logger', '-p', `authpriv.${level}`, '-t', 'keymaker', `--id=${pid}`];
      if (options.socket) argv.push('--socket', options.socket);
      argv.push('--', line);
      // A logging failure must never change a login decision; it is dropped.
      const done: Promise<unknown> = run(argv, { timeoutMs: 2000 }).catch(() => undefined);
      pending.add(done);
      void done.finally(() => pending.delete(done));
    },
    async flush() {
      await Promise.all([...pending]);
    },
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
  };
}
