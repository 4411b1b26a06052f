// Types for server.cjs, so the TypeScript tests import it typed (no `any`, no require()).

export interface MotoServer {
  endpoint: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts a local moto server (IAM/STS test backend); see server.cjs. */
export function startMoto(opts?: { repoRoot?: string; port?: number }): Promise<MotoServer>;

/** Binds 127.0.0.1:0, reads the port the OS picked, closes, returns it. */
export function freePort(): Promise<number>;
