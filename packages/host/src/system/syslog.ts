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

/** syslog(3) priorities of the authpriv facility (10 << 3) at each level, for logger's --prio-prefix. */
const AUTHPRIV_PRIORITY: Record<LogLevel, number> = { err: 83, warning: 84, notice: 85, info: 86 };

/**
 * Hands messages to util-linux logger(1), which writes them to /dev/log (Node has no Unix datagram sockets).
 * Messages go on logger's stdin, one line each with its own priority (`--prio-prefix`), and one logger runs at a
 * time: the messages logged while it runs go to the next one. A sync that audits 1,000 memberships so starts a
 * handful of processes instead of 1,000 (whose flood also lost lines). log() never waits: a stalled /dev/log (a full
 * datagram queue, a reader that never reads) blocks only the logger process, which its timeout or flush's bound
 * kills; every message it carried, and every one still queued, is then counted as dropped.
 */
export function createLoggerSyslog(options: LoggerSyslogOptions = {}): Syslog & { dropped(): number } {
  const run = options.run ?? runProcess;
  const pid = options.pid ?? process.pid;
  const argv = ['logger', '--prio-prefix', '-p', 'authpriv.info', '-t', 'keymaker', `--id=${pid}`];
  if (options.socket) argv.push('--socket', options.socket);
  let queue: string[] = [];
  let inFlight: { done: Promise<void>; controller: AbortController } | undefined;
  let dropped = 0;
  let abandoned = false;
  const start = () => {
    if (inFlight || queue.length === 0 || abandoned) return;
    const lines = queue;
    queue = [];
    const controller = new AbortController();
    const done = run(argv, {
      input: lines.join('\n') + '\n',
      timeoutMs: SYSLOG_WRITE_TIMEOUT_MS,
      signal: controller.signal,
      killGraceMs: 100,
    }).then(
      (result) => {
        // A logging failure must never change a login decision; its messages are dropped.
        if (result.code !== 0) dropped += lines.length;
      },
      () => {
        dropped += lines.length;
      },
    );
    inFlight = {
      controller,
      done: done.finally(() => {
        inFlight = undefined;
        start();
      }),
    };
  };
  const settled = async () => {
    while (inFlight) await inFlight.done;
  };
  return {
    log(level, message) {
      const line = sanitizeLogMessage(message);
      options.echo?.(`keymaker: ${line}`);
      if (abandoned) {
        dropped += 1;
        return;
      }
      queue.push(`<${AUTHPRIV_PRIORITY[level]}>${line}`);
      start();
    },
    async flush(timeoutMs) {
      if (timeoutMs === undefined) {
        await settled();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, timeoutMs))));
      await Promise.race([settled(), expired]);
      clearTimeout(timer);
      if (!inFlight && queue.length === 0) return;
      // Past the bound: nothing more is started, the logger running is killed, and what it and the queue held counts.
      abandoned = true;
      dropped += queue.length;
      queue = [];
      inFlight?.controller.abort();
      await settled();
      abandoned = false;
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
