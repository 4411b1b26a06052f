import { DeadlineError } from './errors';

/**
 * An overall deadline: one AbortSignal that fires after `ms`. Clients built
 * with it pass the signal to every SDK call, so a hung request is cancelled
 * (its socket closed) rather than merely outrun. The timer is unref'd: it
 * never keeps a finished process alive.
 */
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
 * (`client.send(cmd, { abortSignal })`); if the deadline passes first, the
 * result is `onTimeout()` (default: a DeadlineError), even if `body` ignores
 * the signal.
 */
export async function withDeadline<T>(
  ms: number,
  body: (signal: AbortSignal) => Promise<T>,
  onTimeout: () => Error = () => new DeadlineError(`did not finish within ${formatSeconds(ms)}`),
): Promise<T> {
  const deadline = createDeadline(ms);
  try {
    return await raceSignal(body(deadline.signal), deadline.signal, onTimeout);
  } finally {
    deadline.clear();
  }
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
        reject(signal.aborted ? onAbort() : error);
      },
    );
  });
}
