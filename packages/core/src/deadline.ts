/*
 * An overall deadline: one AbortSignal that fires after `ms`. Clients built
 * with it pass the signal to every SDK call, so a hung request is cancelled
 * (its socket closed) rather than merely outrun. The timer is unref'd: it
 * never keeps a finished process alive.
 */
import { DeadlineError } from './errors';

export interface Deadline {
  readonly ms: number;
  readonly signal: AbortSignal;
  /** Stops the timer (the deadline can no longer fire). */
  clear(): void;
}

export function createDeadline(ms: number): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DeadlineError(`no answer within ${formatSeconds(ms)}`)), ms);
  timer.unref?.();
  return { ms, signal: controller.signal, clear: () => clearTimeout(timer) };
}

/** "30 s", "2.5 s", "0.2 s". */
export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * Runs `body` under a deadline of `ms`: `body` gets the signal to pass on
 * (`client.send(cmd, { abortSignal })`, `sys.run(argv, { signal })`) and the
 * Deadline itself (for AwsClientOptions.deadline); if the deadline passes
 * first, the result is `onTimeout()` (default: a DeadlineError), even if
 * `body` ignores the signal. The one helper every command's overall
 * deadline goes through (client commands and the host's lookup, PAM hook, sync).
 */
export async function withDeadline<T>(
  ms: number,
  body: (signal: AbortSignal, deadline: Deadline) => Promise<T>,
  onTimeout: () => Error = () => new DeadlineError(`did not finish within ${formatSeconds(ms)}`),
  options: WithDeadlineOptions = {},
): Promise<T> {
  const deadline = createDeadline(ms);
  let work: Promise<T> | undefined;
  try {
    work = body(deadline.signal, deadline);
    return await raceSignal(work, deadline.signal, onTimeout);
  } catch (error) {
    // Timed out: give the cancelled work (killed children, aborted requests, a lock's release) time to end.
    if (deadline.signal.aborted && work && options.settleMs) await settled(work, options.settleMs);
    throw error;
  } finally {
    deadline.clear();
  }
}

export interface WithDeadlineOptions {
  /**
   * After the deadline, wait up to this long for `body` to settle before rejecting, so that what
   * it started is gone (a child killed, a lock released) when the caller goes on or exits.
   */
  settleMs?: number;
}

function settled(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]).finally(() => clearTimeout(timer));
}

/** `promise`, or `onAbort()` as soon as `signal` fires (whichever is first). */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(onAbort());
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', abort);
        // An SDK call cancelled by this signal rejects with an AbortError: report the deadline instead.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- any other reason passes through unchanged
        reject(signal.aborted ? onAbort() : error);
      },
    );
  });
}
