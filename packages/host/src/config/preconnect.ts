// A login's first requests wait for TCP and TLS set-up: 2 round trips each, and its one IAM wave
// opens three connections at once. Opening them while the process is still setting up takes those
// round trips off the login. Each pre-opened socket is for one
// host:port, made by tls.connect with Node's defaults (the same CA store, certificate check and
// host name check a request's own connection gets), and is handed only to a request for that
// host:port. A socket that failed or closed is dropped; the request then connects as usual.
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { nodeCodeCacheFs, readRootOwnedFile, type CodeCacheFs } from '../system/code-cache';

type ConnectOptions = { host?: string | null; hostname?: string | null; port?: number | string | null };

const keyOf = (host: string, port: number) => `${host}:${port}`;
const ignore = () => {};

/** Sockets the loader opened before the bundle loaded, for the bundle's agent to take over. */
const HANDOFF = Symbol.for('keymaker.preconnected');
type Ready = Map<string, tls.TLSSocket[]>;
const handoff = globalThis as { [HANDOFF]?: Ready };

function openTls(host: string, port: number, options: tls.ConnectionOptions): tls.TLSSocket {
  // As https.Agent would: SNI unless the host is an IP address; Node checks the certificate and the name.
  const socket = tls.connect({
    ...options,
    host,
    port,
    ...(net.isIP(host) ? {} : { servername: host }),
    ALPNProtocols: ['http/1.1'],
  });
  socket.on('error', ignore);
  return socket;
}

function hostPort(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 443 };
}

/**
 * Where the lookup's IAM requests go, from the host config's text: its iamEndpoint, else IAM's global
 * endpoint in the standard partition (the SDK's answer for those regions); undefined for anything
 * else (China, GovCloud, ISO regions, an unreadable config): then nothing is opened early.
 */
export function iamUrlFromHostConfig(text: string): URL | undefined {
  let config: { iamEndpoint?: unknown; region?: unknown };
  try {
    config = JSON.parse(text) as typeof config;
  } catch {
    return undefined;
  }
  if (typeof config !== 'object' || config === null) return undefined;
  if (typeof config.iamEndpoint === 'string') {
    try {
      const url = new URL(config.iamEndpoint);
      return url.protocol === 'https:' ? url : undefined;
    } catch {
      return undefined;
    }
  }
  const region = config.region;
  if (
    region !== undefined &&
    (typeof region !== 'string' || !/^(us|eu|ap|sa|ca|me|af|il|mx)-(?!gov-)[a-z]+-\d+$/.test(region))
  )
    return undefined;
  return new URL('https://iam.amazonaws.com/');
}

/**
 * The loader's head start: `count` connections to the IAM endpoint the root-owned host config names,
 * opened before the bundle loads, handed to the bundle's PreconnectAgent. A config another user could
 * have written, or one this cannot read, opens nothing (the bundle reads and checks it again itself).
 */
export function preconnectFromHostConfig(
  configFile: string,
  count: number,
  io: CodeCacheFs = nodeCodeCacheFs,
  tlsOptions: tls.ConnectionOptions = {},
): void {
  const file = readRootOwnedFile(configFile, io);
  const url = file.status === 'ok' ? iamUrlFromHostConfig(file.content.toString('utf8')) : undefined;
  if (!url) return;
  const { host, port } = hostPort(url);
  const ready: Ready = handoff[HANDOFF] ?? new Map<string, tls.TLSSocket[]>();
  const list = ready.get(keyOf(host, port)) ?? [];
  for (let i = 0; i < count; i++) list.push(openTls(host, port, tlsOptions));
  ready.set(keyOf(host, port), list);
  handoff[HANDOFF] = ready;
}

export class PreconnectAgent extends https.Agent {
  private readonly ready: Ready;

  /**
   * `tls`: options for every connection, pre-opened or not (tests: a CA), as https.Agent merges them.
   * Takes over what the loader opened (preconnectFromHostConfig), once.
   */
  constructor(private readonly tlsOptions: tls.ConnectionOptions = {}) {
    // The SDK's own agent is keep-alive too: requests after the first reuse their sockets.
    super({ keepAlive: true, ...tlsOptions });
    this.ready = handoff[HANDOFF] ?? new Map<string, tls.TLSSocket[]>();
    delete handoff[HANDOFF];
  }

  /** Makes `count` connections to an https URL's host and port wait, counting those already waiting (other protocols: nothing). */
  preconnect(url: URL, count: number): void {
    if (url.protocol !== 'https:') return;
    const { host, port } = hostPort(url);
    const list = (this.ready.get(keyOf(host, port)) ?? []).filter((s) => !s.destroyed);
    while (list.length < count) list.push(openTls(host, port, this.tlsOptions));
    this.ready.set(keyOf(host, port), list);
  }

  /** Sockets still waiting for a request (tests). */
  waiting(): number {
    return [...this.ready.values()].reduce((n, list) => n + list.filter((s) => !s.destroyed).length, 0);
  }

  /** Closes the sockets no request took. */
  override destroy(): void {
    for (const list of this.ready.values()) for (const socket of list) socket.destroy();
    this.ready.clear();
    super.destroy();
  }

  override createConnection(options: ConnectOptions, callback?: (err: Error | null, socket: net.Socket) => void) {
    const host = options.host ?? options.hostname ?? 'localhost';
    const list = this.ready.get(keyOf(host, Number(options.port ?? 443)));
    for (let socket = list?.shift(); socket; socket = list?.shift()) {
      if (socket.destroyed) continue;
      socket.removeListener('error', ignore);
      return socket;
    }
    // https.Agent's own: tls.connect with the request's options.
    type Create = (this: https.Agent, o: ConnectOptions, cb?: typeof callback) => net.Socket;
    return (https.Agent.prototype as unknown as { createConnection: Create }).createConnection.call(
      this,
      options,
      callback,
    );
  }
}

/** What an SDK client's config offers to find the URL its requests go to. */
interface EndpointConfig {
  endpoint?: () => Promise<{ protocol: string; hostname: string; port?: number; path: string }>;
  region: () => Promise<string>;
  useFipsEndpoint: () => Promise<boolean>;
  useDualstackEndpoint: () => Promise<boolean>;
  useGlobalEndpoint?: () => Promise<boolean>;
  endpointProvider: (params: Record<string, unknown>) => { url: URL };
}

/** The URL an SDK client sends to: its configured endpoint, else what its endpoint rules give. */
export async function clientEndpoint(client: { config: unknown }): Promise<URL> {
  const config = client.config as EndpointConfig;
  const custom = config.endpoint ? await config.endpoint() : undefined;
  if (custom) return new URL(`${custom.protocol}//${custom.hostname}${custom.port ? `:${custom.port}` : ''}/`);
  return config.endpointProvider({
    Region: await config.region(),
    UseFIPS: await config.useFipsEndpoint(),
    UseDualStack: await config.useDualstackEndpoint(),
    ...(config.useGlobalEndpoint ? { UseGlobalEndpoint: await config.useGlobalEndpoint() } : {}),
  }).url;
}
