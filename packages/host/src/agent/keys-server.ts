// The agent's answer to sshd's AuthorizedKeysCommand: HTTP/1.1 on a Unix socket, so the command sshd
// runs can be `curl --unix-socket` (keymaker-keys-client (keys-client-script.ts)), which starts in a few milliseconds.
//
//   GET /keys/<user>[?fingerprint=SHA256:...]
//     200 text/plain   one authorized_keys line per active, valid IAM key (possibly none); with a
//                      fingerprint, only the line of that key (or none)
//     404 empty        refused: not a valid or allowed name, no such IAM user, not in the required
//                      group, refused by the admission gate
//     503 empty        doubt: IAM failed, answered something invalid, or not within the deadline
//     400/405 empty    a request that is not one of ours
//   GET /status        200 application/json: the agent's state (version, uptime, caches, IAM latency,
//                      last errors), when the server was given a status function
//
// One IAM round trip per login: ListSSHPublicKeys and the required-group check in parallel; key bodies
// come from a cache by key ID (they never change for an ID), so GetSSHPublicKey runs only for a key
// never seen before. sshd's second call for the same login is answered from a few-second cache. Every
// request is answered within `deadlineMs`; at the deadline the IAM calls it started are aborted.
//
// Who may connect: the socket is the only access control (Node has no SO_PEERCRED), so it is created
// with mode 0660 (umask 0177 while binding, so it is never more open) in a directory the caller owns
// and nobody else may write (checked), and handed to `group`, the AuthorizedKeysCommandUser's group:
// root, the agent and that group can connect, nobody else. Under systemd the `.socket` unit does the
// same (SocketUser/SocketGroup/SocketMode=0660, in RuntimeDirectory with mode 0750) and passes the fd.
// The answer is public key material only, so a wrong reader learns which keys a user has, never a
// secret; the controls above keep even that to sshd.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
import {
  assertLinuxUserName,
  assertNotReservedName,
  IamDirectory,
  isKeymakerError,
  type ResolvedRoleConfig,
  type SshKeySummary,
  type SshPublicKey,
} from '@keymaker/core';
import { AnswerCache, KeyBodyCache, monotonicClock, type Clock, type LoginState } from './keys-cache';
import { removeStaleSocket } from './unix-socket';

// ---------------------------------------------------------------------------------------------
// The source: the three IAM questions a login needs.

export interface KeysSource {
  /** Linux login -> IAM user name (the role config's suffix); throws INVALID_USERNAME. */
  iamUserNameFor(linuxName: string): string;
  /** Every key of the user with its status (all pages, shape-checked). NO_SUCH_USER when there is none. */
  listKeys(iamUserName: string, signal: AbortSignal): Promise<SshKeySummary[]>;
  /** Resolves when the user may log in by group; throws NOT_IN_REQUIRED_GROUP when not. */
  checkRequiredGroup(iamUserName: string, signal: AbortSignal): Promise<void>;
  /** One key's body, validated; `key` undefined (with the reason) when it must not be used. */
  getKey(iamUserName: string, keyId: string, signal: AbortSignal): Promise<{ key?: SshPublicKey; reason?: string }>;
}

/** Each call of the long-lived client with this request's abort signal (IamDirectory only calls send). */
function withSignal(iam: IAMClient, signal: AbortSignal): IAMClient {
  const send = (command: unknown, options?: object) =>
    (iam.send as (c: unknown, o: object) => Promise<unknown>)(command, { ...options, abortSignal: signal });
  return { send } as unknown as IAMClient;
}

/**
 * KeysSource over core's IamDirectory and ONE long-lived IAM client. Build the client once (core's
 * createIamClient, without a deadline: each request brings its own signal) and keep it: the SDK's
 * NodeHttpHandler uses an https.Agent with keepAlive, so after the first login every request goes
 * out on a warm TLS connection.
 */
export class IamKeysSource implements KeysSource {
  constructor(
    private readonly iam: IAMClient,
    private readonly config: ResolvedRoleConfig,
  ) {}

  private directory(signal: AbortSignal): IamDirectory {
    return new IamDirectory(withSignal(this.iam, signal), this.config);
  }

  iamUserNameFor(linuxName: string): string {
    return new IamDirectory(this.iam, this.config).iamUserNameFor(linuxName);
  }

  listKeys(iamUserName: string, signal: AbortSignal): Promise<SshKeySummary[]> {
    return this.directory(signal).listSshPublicKeys(iamUserName);
  }

  async checkRequiredGroup(iamUserName: string, signal: AbortSignal): Promise<void> {
    const required = this.config.requireIamGroup;
    if (!required) return;
    const groups = await this.directory(signal).listGroupsForUser(iamUserName);
    if (!groups.some((group) => group.groupName === required)) {
      throw new RefusedError(
        'NOT_IN_REQUIRED_GROUP',
        `IAM user ${iamUserName} is not a member of the required group ${required}`,
      );
    }
  }

  getKey(iamUserName: string, keyId: string, signal: AbortSignal): Promise<{ key?: SshPublicKey; reason?: string }> {
    return this.directory(signal).getActiveKey(iamUserName, keyId);
  }
}

// ---------------------------------------------------------------------------------------------
// The decision, independent of HTTP.

/** A definite refusal (404). Anything else that is thrown is doubt (503). */
export class RefusedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RefusedError';
  }
}

const REFUSAL_CODES = new Set(['INVALID_USERNAME', 'NO_SUCH_USER', 'NOT_MANAGED', 'NOT_IN_REQUIRED_GROUP']);

function refusalCode(error: unknown): string | undefined {
  if (error instanceof RefusedError) return error.code;
  if (isKeymakerError(error) && REFUSAL_CODES.has(error.code)) return error.code;
  return undefined;
}

/** sshd's %f: OpenSSH's SHA256 fingerprint, unpadded base64 of 32 bytes. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
/** IAM's SSHPublicKeyId pattern is [\w]+ (in practice 20 characters, APKA...). */
const KEY_ID = /^[A-Za-z0-9_]{1,128}$/;
/** IAM allows 5 keys per user; far more means an answer not to trust. */
const MAX_KEYS = 100;

export type KeysAnswer =
  | { status: 200; lines: string[]; fingerprints: string[]; iamUserName: string; cached: boolean; fetched: number }
  | { status: 404; code: string; cached: boolean }
  | { status: 503; reason: string };

export type KeysEvent =
  | { type: 'answer'; user: string; fingerprint?: string; answer: KeysAnswer; ms: number }
  | { type: 'rejected-key'; user: string; iamUserName: string; keyId: string; reason: string }
  | { type: 'bad-request'; reason: string }
  | { type: 'connection-limit' };

export interface KeysServiceOptions {
  source: KeysSource;
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
  /**
   * Host checks before any IAM call (e.g. agent mode's "not a local account"); throw RefusedError
   * (or a NOT_MANAGED KeymakerError) to refuse, anything else is doubt.
   */
  admit?: (user: string, signal: AbortSignal) => Promise<void> | void;
  /** Per request, from its arrival. Default 2000 ms. */
  deadlineMs?: number;
  /** How long one login's state is reused (sshd's second call). Default 5000 ms; 0 disables. */
  answerTtlMs?: number;
  maxKeyBodies?: number;
  clock?: Clock;
  log?: (event: KeysEvent) => void;
}

export const DEFAULT_KEYS_DEADLINE_MS = 2000;

/** The answer logic with its caches; KeysServer puts it on a socket. */
export class KeysService {
  readonly bodies: KeyBodyCache;
  readonly answers: AnswerCache;
  readonly deadlineMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: KeysServiceOptions) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_KEYS_DEADLINE_MS;
    if (!(this.deadlineMs > 0)) throw new RangeError('deadlineMs must be positive');
    this.clock = options.clock ?? monotonicClock;
    this.bodies = new KeyBodyCache(options.maxKeyBodies);
    this.answers = new AnswerCache(options.answerTtlMs, this.clock);
  }

  /** Drops every cached answer and body (a changed role config: the name mapping may differ). */
  clearCaches(): void {
    this.answers.clear();
    this.bodies.clear();
  }

  /** Never rejects; settles within the deadline (503 then, and the work's signal is aborted). */
  answer(user: string, fingerprint?: string): Promise<KeysAnswer> {
    const started = this.clock.now();
    const controller = new AbortController();
    return new Promise<KeysAnswer>((resolve) => {
      let settled = false;
      const settle = (answer: KeysAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (answer.status === 503) {
          this.answers.invalidate(user);
          controller.abort();
        }
        this.options.log?.({ type: 'answer', user, fingerprint, answer, ms: this.clock.now() - started });
        resolve(answer);
      };
      const timer = setTimeout(
        () => settle({ status: 503, reason: `no answer within ${this.deadlineMs} ms` }),
        this.deadlineMs,
      );
      this.decide(user, fingerprint, controller.signal).then(settle, (error: unknown) => {
        const code = refusalCode(error);
        settle(
          code
            ? { status: 404, code, cached: false }
            : { status: 503, reason: error instanceof Error ? error.message : String(error) },
        );
      });
    });
  }

  private async decide(user: string, fingerprint: string | undefined, signal: AbortSignal): Promise<KeysAnswer> {
    // Before anything else: a strict Linux name, not reserved; a fingerprint of the one shape.
    let name: string;
    try {
      name = assertNotReservedName(assertLinuxUserName(user), this.options.reservedNames);
    } catch {
      throw new RefusedError('INVALID_USERNAME', 'not an allowed login name');
    }
    if (fingerprint !== undefined && !FINGERPRINT.test(fingerprint))
      throw new RefusedError('INVALID_FINGERPRINT', 'not a SHA256 fingerprint');
    const cachedState = this.answers.get(name);
    const state = cachedState ?? (await this.loginState(name, signal));
    if (!cachedState && !signal.aborted) this.answers.set(name, state);
    if (state.kind === 'refused') return { status: 404, code: state.code, cached: cachedState !== undefined };
    return this.keysFor(name, state, fingerprint, cachedState !== undefined, signal);
  }

  /** One IAM wave: the key list and the group check in parallel. A refusal is a state; doubt throws. */
  private async loginState(name: string, signal: AbortSignal): Promise<LoginState> {
    const { source } = this.options;
    try {
      await this.options.admit?.(name, signal);
      const iamUserName = source.iamUserNameFor(name);
      const [summaries] = await Promise.all([
        source.listKeys(iamUserName, signal),
        source.checkRequiredGroup(iamUserName, signal),
      ]);
      if (!Array.isArray(summaries) || summaries.length > MAX_KEYS)
        throw new Error('key list is not a plausible answer');
      const active: string[] = [];
      for (const summary of summaries) {
        if (typeof summary?.keyId !== 'string' || !KEY_ID.test(summary.keyId))
          throw new Error('key list names an invalid key ID');
        if (summary.status !== 'Active' && summary.status !== 'Inactive')
          throw new Error('key list has an unknown status');
        if (summary.status === 'Active' && !active.includes(summary.keyId)) active.push(summary.keyId);
      }
      return { kind: 'allowed', iamUserName, activeKeyIds: active };
    } catch (error) {
      const code = refusalCode(error);
      if (code) return { kind: 'refused', code };
      throw error;
    }
  }

  /** The lines of the active keys: bodies from the cache, the missing ones fetched in parallel. */
  private async keysFor(
    name: string,
    state: Extract<LoginState, { kind: 'allowed' }>,
    fingerprint: string | undefined,
    cached: boolean,
    signal: AbortSignal,
  ): Promise<KeysAnswer> {
    const { iamUserName, activeKeyIds } = state;
    const known = new Map<string, SshPublicKey>();
    for (const keyId of activeKeyIds) {
      const key = this.bodies.get(iamUserName, keyId);
      if (key) known.set(keyId, key);
    }
    // The offered key among the cached bodies: nothing to fetch.
    const hit = fingerprint ? [...known.values()].find((key) => key.fingerprint === fingerprint) : undefined;
    let fetched = 0;
    if (!hit) {
      const missing = activeKeyIds.filter((keyId) => !known.has(keyId));
      fetched = missing.length;
      const results = await Promise.all(
        missing.map(async (keyId) => ({ keyId, ...(await this.options.source.getKey(iamUserName, keyId, signal)) })),
      );
      for (const result of results) {
        if (result.key) {
          this.bodies.set(iamUserName, result.keyId, result.key);
          known.set(result.keyId, result.key);
        } else {
          this.options.log?.({
            type: 'rejected-key',
            user: name,
            iamUserName,
            keyId: result.keyId,
            reason: result.reason ?? 'unknown',
          });
        }
      }
    }
    const keys: SshPublicKey[] = [];
    for (const keyId of activeKeyIds) {
      const key = known.get(keyId);
      if (!key || keys.some((k) => k.line === key.line)) continue;
      if (fingerprint && key.fingerprint !== fingerprint) continue;
      keys.push(key);
    }
    return {
      status: 200,
      lines: keys.map((key) => key.line),
      fingerprints: keys.map((key) => key.fingerprint),
      iamUserName,
      cached,
      fetched,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP on the socket.

export type KeysListenTarget = { path: string; mode?: number; gid?: number } | { fd: number };

export interface KeysServerOptions extends KeysServiceOptions {
  /** Open connections beyond this are refused. Default 256. */
  maxConnections?: number;
  /** `GET /status` answers this as JSON (the agent's state, for `keymaker status`); 404 when unset. */
  status?: () => object;
}

/** Parses a request line's target; undefined when it is not `/keys/<user>[?fingerprint=...]`. */
export function parseKeysRequest(url: string): { user: string; fingerprint?: string } | { problem: string } {
  if (url.length > 512) return { problem: 'request target too long' };
  const match = /^\/keys\/([^/?#]+)(?:\?(.*))?$/.exec(url);
  if (!match) return { problem: 'not /keys/<user>' };
  // No percent-decoding: a valid Linux name needs none, so an encoded one is refused as it stands.
  const user = match[1]!;
  const query = match[2];
  if (query === undefined || query === '') return { user };
  const params = new URLSearchParams(query);
  const keys = [...params.keys()];
  if (keys.length !== 1 || keys[0] !== 'fingerprint') return { problem: 'unknown query parameter' };
  return { user, fingerprint: params.get('fingerprint')! };
}

export class KeysServer {
  readonly service: KeysService;
  private readonly server: http.Server;
  private socketPath?: string;
  private socketIno?: number;

  constructor(options: KeysServerOptions) {
    this.service = new KeysService(options);
    const log = options.log;
    this.server = http.createServer(
      {
        maxHeaderSize: 4096,
        // A client that sends its request slowly is cut off at the deadline.
        headersTimeout: this.service.deadlineMs,
        requestTimeout: this.service.deadlineMs + 1000,
        keepAliveTimeout: 1000,
      },
      (request, response) => {
        const send = (status: number, body = '') => {
          response.writeHead(status, {
            'Content-Type': 'text/plain; charset=utf-8',
            'Content-Length': Buffer.byteLength(body),
            'Cache-Control': 'no-store',
          });
          response.end(body);
        };
        if (request.method !== 'GET') {
          log?.({ type: 'bad-request', reason: 'method' });
          send(405);
          return;
        }
        if (request.url === '/status' && options.status) {
          const body = `${JSON.stringify(options.status())}\n`;
          response.writeHead(200, {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
            'Cache-Control': 'no-store',
          });
          response.end(body);
          return;
        }
        const parsed = parseKeysRequest(request.url ?? '');
        if ('problem' in parsed) {
          log?.({ type: 'bad-request', reason: parsed.problem });
          send(parsed.problem === 'not /keys/<user>' ? 404 : 400);
          return;
        }
        void this.service.answer(parsed.user, parsed.fingerprint).then((answer) => {
          if (response.destroyed) return;
          // One write: every line or nothing.
          if (answer.status === 200) send(200, answer.lines.length > 0 ? `${answer.lines.join('\n')}\n` : '');
          else if (answer.status === 404 && answer.code === 'INVALID_FINGERPRINT') send(400);
          // Not the agent's to answer (an /etc/passwd account): the client asks the compat lookup.
          else if (answer.status === 404 && answer.code === 'LOCAL_ACCOUNT') send(421);
          else send(answer.status);
        });
      },
    );
    this.server.maxConnections = options.maxConnections ?? 256;
    this.server.on('drop', () => log?.({ type: 'connection-limit' }));
    this.server.on('clientError', (_error, socket: net.Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /**
   * Listens on an inherited fd (systemd socket activation) or on a path: the parent directory must
   * exist and be writable by nobody but its owner (else someone could swap the socket); a stale socket
   * nobody answers on is replaced, a live one is an error. The socket gets `mode` (default 0660) and,
   * given `gid`, that group.
   */
  async listen(target: KeysListenTarget): Promise<void> {
    if ('fd' in target) {
      await this.bind({ fd: target.fd });
      return;
    }
    const socketPath = target.path;
    const dir = fs.lstatSync(path.dirname(socketPath));
    if (!dir.isDirectory()) throw new Error(`${path.dirname(socketPath)} is not a directory`);
    if ((dir.mode & 0o022) !== 0)
      throw new Error(
        `${path.dirname(socketPath)} is writable by group or others: refusing to put the keys socket there`,
      );
    await removeStaleSocket(socketPath);
    let previous: number | undefined;
    try {
      previous = process.umask(0o177);
    } catch {
      /* a worker thread: no umask; chmod below still narrows it */
    }
    try {
      await this.bind(socketPath);
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
    if (target.gid !== undefined) fs.chownSync(socketPath, -1, target.gid);
    fs.chmodSync(socketPath, target.mode ?? 0o660);
    this.socketPath = socketPath;
    this.socketIno = fs.lstatSync(socketPath).ino;
  }

  private bind(target: string | { fd: number }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(target, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops listening, closes every connection, removes the socket file if it is still ours. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.socketPath) {
      try {
        if (fs.lstatSync(this.socketPath).ino === this.socketIno) fs.unlinkSync(this.socketPath);
      } catch {
        /* already gone */
      }
    }
  }
}

/** Starts the keys server on a socket path or inherited fd. */
export async function startKeysServer(options: KeysServerOptions & { listen: KeysListenTarget }): Promise<KeysServer> {
  const server = new KeysServer(options);
  await server.listen(options.listen);
  return server;
}
