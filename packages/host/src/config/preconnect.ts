// A login's first requests wait for TCP and TLS set-up: 2 round trips each, and the IAM wave after
// STS opens three connections at once. Opening them while the process is still setting up (and
// while STS answers) takes those round trips off the login. Each pre-opened socket is for one
// host:port, made by tls.connect with Node's defaults (the same CA store, certificate check and
// host name check a request's own connection gets), and is handed only to a request for that
// host:port. A socket that failed or closed is dropped; the request then connects as usual.
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';

type ConnectOptions = { host?: string | null; hostname?: string | null; port?: number | string | null };

const keyOf = (host: string, port: number) => `${host}:${port}`;
const ignore = () => {};

export class PreconnectAgent extends https.Agent {
  private readonly ready = new Map<string, tls.TLSSocket[]>();

  /** `tls`: options for every connection, pre-opened or not (tests: a CA), as https.Agent merges them. */
  constructor(private readonly tlsOptions: tls.ConnectionOptions = {}) {
    // The SDK's own agent is keep-alive too: requests after the first reuse their sockets.
    super({ keepAlive: true, ...tlsOptions });
  }

  /** Starts `count` connections to an https URL's host and port (other protocols: nothing). */
  preconnect(url: URL, count: number): void {
    if (url.protocol !== 'https:') return;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port ? Number(url.port) : 443;
    const list = this.ready.get(keyOf(host, port)) ?? [];
    for (let i = 0; i < count; i++) {
      // As https.Agent would: SNI unless the host is an IP address; Node checks the certificate and the name.
      const socket = tls.connect({
        ...this.tlsOptions,
        host,
        port,
        ...(net.isIP(host) ? {} : { servername: host }),
        ALPNProtocols: ['http/1.1'],
      });
      socket.on('error', ignore);
      list.push(socket);
    }
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
