// A raw Varlink client for the agent's tests: sends bytes, collects NUL-terminated replies.
import * as http from 'node:http';
import * as net from 'node:net';

export interface RawConnection {
  socket: net.Socket;
  /** Every reply so far, parsed. */
  replies: Record<string, unknown>[];
  /** Resolves once `count` replies arrived in total (rejects on close or after timeoutMs). */
  waitReplies(count: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  /** Resolves when the server closed the connection (rejects after timeoutMs). */
  waitClosed(timeoutMs?: number): Promise<void>;
  send(data: string | Buffer): void;
  close(): void;
}

export function connectRaw(socketPath: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const replies: Record<string, unknown>[] = [];
    let buffer = Buffer.alloc(0);
    let closed = false;
    const waiters = new Set<() => void>();
    const wake = () => waiters.forEach((w) => w());
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let nul = buffer.indexOf(0); nul !== -1; nul = buffer.indexOf(0)) {
        replies.push(JSON.parse(buffer.subarray(0, nul).toString('utf8')) as Record<string, unknown>);
        buffer = buffer.subarray(nul + 1);
      }
      wake();
    });
    socket.on('close', () => {
      closed = true;
      wake();
    });
    socket.on('error', () => undefined);
    const until = (ok: () => boolean, failIfClosed: boolean, timeoutMs: number, what: string) =>
      new Promise<void>((res, rej) => {
        const check = () => {
          if (ok()) return done(res);
          if (failIfClosed && closed)
            return done(() =>
              rej(new Error(`connection closed while waiting for ${what}; replies: ${JSON.stringify(replies)}`)),
            );
        };
        const timer = setTimeout(
          () => done(() => rej(new Error(`timed out waiting for ${what}; replies: ${JSON.stringify(replies)}`))),
          timeoutMs,
        );
        const done = (f: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          f();
        };
        waiters.add(check);
        check();
      });
    socket.once('connect', () =>
      resolve({
        socket,
        replies,
        send: (data) => socket.write(data),
        close: () => socket.destroy(),
        waitReplies: async (count, timeoutMs = 3000) => {
          await until(() => replies.length >= count, true, timeoutMs, `${count} replies`);
          return replies.slice(0, count);
        },
        waitClosed: (timeoutMs = 3000) => until(() => closed, false, timeoutMs, 'close'),
      }),
    );
    socket.once('error', reject);
  });
}

/** One call, framed; resolves with its replies (up to the one without `continues`). */
export async function call(
  socketPath: string,
  method: string,
  parameters: Record<string, unknown> = {},
  flags: { more?: boolean } = {},
): Promise<Record<string, unknown>[]> {
  const conn = await connectRaw(socketPath);
  try {
    conn.send(JSON.stringify({ method, parameters, ...(flags.more ? { more: true } : {}) }) + '\0');
    for (let n = 1; ; n++) {
      const replies = await conn.waitReplies(n);
      if (!replies[n - 1]!.continues) return replies;
    }
  } finally {
    conn.close();
  }
}

/** One GET on the agent's keys socket (HTTP over a Unix socket): status and body. */
export function httpGet(socketPath: string, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, path: target }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

/** Connects, and resolves with everything the server sent once it closed the connection. */
export function readAll(socketPath: string): Promise<string> {
  return new Promise((done, fail) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('end', () => done(text));
    socket.on('error', fail);
  });
}
