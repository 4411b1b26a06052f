// Types for fault-proxy.cjs, so the TypeScript tests import it typed (no `any`, no require()).

/** The fault to inject; see the comment on createFaultProxy in fault-proxy.cjs. */
export interface Fault {
  kind: 'none' | 'refuse' | 'hang' | 'status' | 'throttle' | 'slow' | 'reset';
  /** HTTP status for kind 'status' (default 500). */
  status?: number;
  /** Delay for kind 'slow' (default 1000). */
  delayMs?: number;
  /** Only requests with this IAM/STS Action. */
  action?: string;
  /** Only the Nth matching request, 1-based (default: all). */
  nth?: number;
  /** Only this many matching requests after the Nth (default: all). */
  times?: number;
}

export interface FaultProxyStats {
  total: number;
  counts: Record<string, number>;
}

export interface FaultProxy {
  readonly url: string;
  readonly port: number;
  stats(): FaultProxyStats;
  resetStats(): void;
  /** Sets the fault; 'refuse' closes the listening socket so connects get ECONNREFUSED. */
  setFault(next: Fault): Promise<void>;
  start(): Promise<FaultProxy>;
  stop(): Promise<void>;
}

export interface ImdsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export function createFaultProxy(options?: { target?: string; port?: number }): FaultProxy;

/** A fake IMDSv2 behind a fault proxy; resolves to the started proxy. */
export function startFakeImds(options: {
  roleName?: string;
  credentials: ImdsCredentials;
  region?: string;
}): Promise<FaultProxy>;

/** A port with nothing listening (connections are refused). */
export function closedPort(): Promise<number>;
