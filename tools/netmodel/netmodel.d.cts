// Types for netmodel.cjs, so the TypeScript tests import it typed.
import type * as http from 'node:http';
import type * as https from 'node:https';
import type * as net from 'node:net';

export interface TestCa {
  caFile: string;
  certFile: string;
  keyFile: string;
}
export function createTestCa(dir: string): TestCa;

export interface ClientHelloCounter {
  readonly count: number;
  push(chunk: Buffer): void;
}
export function createClientHelloCounter(): ClientHelloCounter;

/** What the relay uses to wait; tests pass a hand-stepped one. */
export interface RelayClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
export interface RelayStats {
  connections: number;
  clientHellos: number;
  receivedUp: number;
  receivedDown: number;
  bytesUp: number;
  bytesDown: number;
  rttMs: number;
}
export interface RelayEvent {
  direction: 'up' | 'down';
  bytes: number;
}
export interface DelayRelay {
  readonly server: net.Server;
  readonly events: RelayEvent[];
  stats(): RelayStats;
  reset(): void;
  setRtt(ms: number): void;
  listen(port?: number, host?: string): Promise<number>;
  close(): Promise<void>;
}
export function createDelayRelay(options: {
  target: { host: string; port: number };
  rttMs?: number;
  recordEvents?: boolean;
  clock?: RelayClock;
}): DelayRelay;

export interface TerminatorStats {
  tlsConnections: number;
  fullHandshakes: number;
  resumedSessions: number;
  requests: number;
}
export interface TlsTerminator {
  readonly server: https.Server<typeof http.IncomingMessage, typeof http.ServerResponse>;
  stats(): TerminatorStats;
  reset(): void;
  listen(port?: number, host?: string): Promise<number>;
  close(): Promise<void>;
}
export function createTlsTerminator(options: {
  target: string;
  certFile: string;
  keyFile: string;
  keepAliveTimeoutMs?: number;
}): TlsTerminator;

export interface NetModel {
  readonly url: string;
  readonly caFile: string;
  setRtt(ms: number): void;
  reset(): void;
  stats(): RelayStats & TerminatorStats;
  close(): Promise<void>;
}
export function startNetModel(options: { dir: string; target: string; rttMs?: number }): Promise<NetModel>;
