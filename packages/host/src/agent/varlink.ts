// A minimal Varlink server (https://varlink.org) over an AF_UNIX stream socket: what libnss-systemd
// speaks to the services in /run/systemd/userdb/. Each message is one JSON object followed by a NUL
// byte. A call is {method, parameters?, more?, oneway?}; a reply {parameters} or {error, parameters};
// with `more`, all replies but the last carry `continues: true`.
//
// Every call is answered within `deadlineMs` of its arrival: a handler that has not settled by then
// gets the interface's failure reply instead (its late answer is dropped). libnss-systemd waits 45 s
// for a reply, and sshd and `ls -l` with it, so no client may ever be left waiting on us.
// Malformed input (no NUL within maxMessageBytes, bad JSON, a call that is not a call) closes the
// connection: a client that speaks the protocol never sends it.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { removeStaleSocket } from './unix-socket';

export const VARLINK_SERVICE = 'org.varlink.service';
export const VARLINK_ERRORS = {
  interfaceNotFound: 'org.varlink.service.InterfaceNotFound',
  methodNotFound: 'org.varlink.service.MethodNotFound',
  methodNotImplemented: 'org.varlink.service.MethodNotImplemented',
  invalidParameter: 'org.varlink.service.InvalidParameter',
  expectedMore: 'org.varlink.service.ExpectedMore',
} as const;

export type JsonObject = Record<string, unknown>;

export interface VarlinkCall {
  method: string;
  parameters: JsonObject;
  more: boolean;
  oneway: boolean;
}

export interface VarlinkReply {
  parameters?: JsonObject;
  error?: string;
}

/** Thrown by a handler to reply with a Varlink error. */
export class VarlinkError extends Error {
  constructor(
    readonly error: string,
    readonly parameters: JsonObject = {},
  ) {
    super(error);
    this.name = 'VarlinkError';
  }
}

/** Replies, in order. With `more` several are allowed; without it only the first is sent. */
export type VarlinkHandler = (call: VarlinkCall, signal: AbortSignal) => Promise<VarlinkReply[]> | VarlinkReply[];

export interface VarlinkInterface {
  /** e.g. io.systemd.UserDatabase */
  name: string;
  /** Method name (without the interface) -> handler. */
  methods: Record<string, VarlinkHandler>;
  /** The interface description (IDL), returned by GetInterfaceDescription. */
  description?: string;
  /** The reply when a handler misses the deadline or fails (throws something not a VarlinkError). */
  failure(call: VarlinkCall, reason: 'deadline' | 'error', cause?: unknown): VarlinkReply;
}

export interface VarlinkInfo {
  vendor: string;
  product: string;
  version: string;
  url: string;
}

export type VarlinkEvent =
  | { type: 'protocol-error'; reason: string }
  | { type: 'deadline'; method: string; ms: number }
  | { type: 'handler-error'; method: string; error: unknown }
  | { type: 'connection-limit' };

export interface VarlinkServerOptions {
  info: VarlinkInfo;
  interfaces: VarlinkInterface[];
  /** Per-call deadline from the call's arrival. Default 1000 ms. */
  deadlineMs?: number;
  /** A message (without its NUL) longer than this closes the connection. Default 64 KiB. */
  maxMessageBytes?: number;
  /** Calls in flight on one connection beyond this close it. Default 32. */
  maxPendingPerConnection?: number;
  /** Open connections beyond this are closed at once. Default 512. */
  maxConnections?: number;
  /** A connection with no traffic and no call in flight is closed after this. Default 30 s. */
  idleTimeoutMs?: number;
  log?: (event: VarlinkEvent) => void;
}

export const DEFAULT_DEADLINE_MS = 1000;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Pure part: framing and call parsing.

export class FramingError extends Error {}

/** Splits a byte stream into NUL-terminated messages; bounded buffering. */
export class MessageFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** The complete messages this chunk finishes (without their NUL). Throws FramingError when a message is too long. */
  push(chunk: Buffer): Buffer[] {
    const messages: Buffer[] = [];
    let start = 0;
    for (let nul = chunk.indexOf(0, start); nul !== -1; nul = chunk.indexOf(0, start)) {
      const part = chunk.subarray(start, nul);
      if (this.pendingBytes + part.length > this.maxMessageBytes)
        throw new FramingError(`message longer than ${this.maxMessageBytes} bytes`);
      messages.push(this.pendingBytes === 0 ? part : Buffer.concat([...this.pending, part]));
      this.pending = [];
      this.pendingBytes = 0;
      start = nul + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxMessageBytes)
        throw new FramingError(`message longer than ${this.maxMessageBytes} bytes`);
      this.pending.push(Buffer.from(rest));
    }
    return messages;
  }

  get bufferedBytes(): number {
    return this.pendingBytes;
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A message -> a call, or a reason it is not one (then the connection is closed). */
export function parseCall(message: Buffer): { call: VarlinkCall } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(message.toString('utf8'));
  } catch {
    return { problem: 'bad JSON' };
  }
  if (!isObject(value)) return { problem: 'message is not a JSON object' };
  const { method, parameters, more, oneway, upgrade } = value;
  if (
    typeof method !== 'string' ||
    !/^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9-]*)+\.[A-Z][A-Za-z0-9]*$/.test(method)
  ) {
    return { problem: 'no valid method name' };
  }
  if (parameters !== undefined && !isObject(parameters)) return { problem: 'parameters is not an object' };
  for (const [key, flag] of Object.entries({ more, oneway, upgrade })) {
    if (flag !== undefined && typeof flag !== 'boolean') return { problem: `${key} is not a boolean` };
  }
  if (upgrade === true) return { problem: 'protocol upgrade is not supported' };
  if (more === true && oneway === true) return { problem: 'more and oneway together' };
  return { call: { method, parameters: parameters ?? {}, more: more === true, oneway: oneway === true } };
}

/** The JSON of one reply, NUL-terminated; `continues` on all but the last reply of a `more` call. */
export function encodeReply(reply: VarlinkReply, continues: boolean): Buffer {
  const message: JsonObject = {};
  if (reply.error !== undefined) message.error = reply.error;
  message.parameters = reply.parameters ?? {};
  if (continues) message.continues = true;
  return Buffer.concat([Buffer.from(JSON.stringify(message), 'utf8'), Buffer.from([0])]);
}

export function errorReply(error: string, parameters: JsonObject = {}): VarlinkReply {
  return { error, parameters };
}

// ---------------------------------------------------------------------------------------------
// The server.

export type ListenTarget = { path: string; mode?: number } | { fd: number };

export class VarlinkServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly methods = new Map<string, { iface: VarlinkInterface; handler: VarlinkHandler }>();
  private readonly interfaces = new Map<string, VarlinkInterface>();
  private readonly deadlineMs: number;
  private readonly maxMessageBytes: number;
  private readonly maxPending: number;
  private readonly maxConnections: number;
  private readonly idleTimeoutMs: number;
  private socketPath?: string;
  private socketIno?: number;

  constructor(private readonly options: VarlinkServerOptions) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxPending = options.maxPendingPerConnection ?? 32;
    this.maxConnections = options.maxConnections ?? 512;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    if (!(this.deadlineMs > 0)) throw new RangeError('deadlineMs must be positive');
    for (const iface of options.interfaces) {
      if (iface.name === VARLINK_SERVICE) throw new Error(`${VARLINK_SERVICE} is built in`);
      this.interfaces.set(iface.name, iface);
      for (const [name, handler] of Object.entries(iface.methods))
        this.methods.set(`${iface.name}.${name}`, { iface, handler });
    }
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /**
   * Listens on a socket path (a stale socket nobody answers on is replaced; a live one is an error)
   * or on an inherited fd (systemd socket activation). The path gets `mode` (default 0666: every
   * process is a client of NSS).
   */
  async listen(target: ListenTarget): Promise<void> {
    if ('fd' in target) {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen({ fd: target.fd }, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
      return;
    }
    const socketPath = target.path;
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    await removeStaleSocket(socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(socketPath, target.mode ?? 0o666);
    this.socketPath = socketPath;
    this.socketIno = fs.lstatSync(socketPath).ino;
  }

  /** Stops listening, closes every connection, removes the socket file if it is still ours. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.socketPath) {
      try {
        if (fs.lstatSync(this.socketPath).ino === this.socketIno) fs.unlinkSync(this.socketPath);
      } catch {
        /* already gone */
      }
    }
  }

  get connections(): number {
    return this.sockets.size;
  }

  private accept(socket: net.Socket): void {
    if (this.sockets.size >= this.maxConnections) {
      this.options.log?.({ type: 'connection-limit' });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const framer = new MessageFramer(this.maxMessageBytes);
    let pending = 0;
    // Replies go out in call order; each call's work starts (and its deadline runs) on arrival.
    let tail: Promise<void> = Promise.resolve();
    const protocolError = (reason: string) => {
      this.options.log?.({ type: 'protocol-error', reason });
      socket.destroy();
    };
    socket.setTimeout(this.idleTimeoutMs, () => {
      if (pending === 0) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch (error) {
        protocolError((error as Error).message);
        return;
      }
      for (const message of messages) {
        if (socket.destroyed) return;
        const parsed = parseCall(message);
        if ('problem' in parsed) {
          protocolError(parsed.problem);
          return;
        }
        if (++pending > this.maxPending) {
          protocolError(`more than ${this.maxPending} calls in flight`);
          return;
        }
        const { call } = parsed;
        const replies = this.answer(call);
        tail = tail.then(async () => {
          const out = await replies;
          pending--;
          if (call.oneway || socket.destroyed) return;
          const sent = call.more ? out : out.slice(0, 1);
          sent.forEach((reply, i) => socket.write(encodeReply(reply, call.more && i < sent.length - 1)));
        });
      }
    });
  }

  /** The replies to one call: never rejects, always settles within the deadline. */
  private answer(call: VarlinkCall): Promise<VarlinkReply[]> {
    if (call.method.startsWith(`${VARLINK_SERVICE}.`)) return Promise.resolve(this.builtin(call));
    const entry = this.methods.get(call.method);
    if (!entry) return Promise.resolve([errorReply(VARLINK_ERRORS.methodNotFound, { method: call.method })]);
    const { iface, handler } = entry;
    const controller = new AbortController();
    const started = Date.now();
    return new Promise<VarlinkReply[]>((resolve) => {
      let settled = false;
      const settle = (replies: VarlinkReply[]) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(replies.length > 0 ? replies : [iface.failure(call, 'error', new Error('handler gave no reply'))]);
      };
      const timer = setTimeout(() => {
        this.options.log?.({ type: 'deadline', method: call.method, ms: Date.now() - started });
        controller.abort();
        settle([iface.failure(call, 'deadline')]);
      }, this.deadlineMs);
      const fail = (error: unknown) => {
        if (error instanceof VarlinkError) {
          settle([errorReply(error.error, error.parameters)]);
        } else {
          if (!settled) this.options.log?.({ type: 'handler-error', method: call.method, error });
          settle([iface.failure(call, 'error', error)]);
        }
      };
      try {
        Promise.resolve(handler(call, controller.signal)).then(settle, fail);
      } catch (error) {
        fail(error);
      }
    });
  }

  private builtin(call: VarlinkCall): VarlinkReply[] {
    const method = call.method.slice(VARLINK_SERVICE.length + 1);
    if (method === 'GetInfo') {
      return [{ parameters: { ...this.options.info, interfaces: [VARLINK_SERVICE, ...this.interfaces.keys()] } }];
    }
    if (method === 'GetInterfaceDescription') {
      const name = call.parameters.interface;
      if (typeof name !== 'string') return [errorReply(VARLINK_ERRORS.invalidParameter, { parameter: 'interface' })];
      if (name === VARLINK_SERVICE) return [{ parameters: { description: VARLINK_SERVICE_IDL } }];
      const iface = this.interfaces.get(name);
      if (!iface) return [errorReply(VARLINK_ERRORS.interfaceNotFound, { interface: name })];
      return [{ parameters: { description: iface.description ?? `interface ${name}\n` } }];
    }
    return [errorReply(VARLINK_ERRORS.methodNotFound, { method: call.method })];
  }
}

const VARLINK_SERVICE_IDL = `# The Varlink Service Interface is provided by every varlink service.
interface org.varlink.service

method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)
method GetInterfaceDescription(interface: string) -> (description: string)

error InterfaceNotFound (interface: string)
error MethodNotFound (method: string)
error MethodNotImplemented (method: string)
error InvalidParameter (parameter: string)
error ExpectedMore ()
`;
