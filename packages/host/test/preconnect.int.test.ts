// The login's pre-opened connections (config/preconnect.ts) against a real TLS server on loopback:
// requests take them, the certificate is checked as for any connection, and a socket is only
// ever handed to a request for the host and port it was opened to. Counts only, no timings.
import * as fs from 'node:fs';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTestCa } from '../../../tools/netmodel/netmodel.cjs';
import { PreconnectAgent, preconnectFromHostConfig } from '../src/config/preconnect';
import type { CodeCacheFs } from '../src/system/code-cache';

interface Server {
  url: URL;
  /** TLS connections the server accepted (completed handshakes). */
  connections: () => number;
  close: () => Promise<void>;
}

let dir: string;
let ca: { caFile: string; certFile: string; keyFile: string };
const servers: Server[] = [];

async function tlsServer(): Promise<Server> {
  let connections = 0;
  const server = https.createServer(
    { cert: fs.readFileSync(ca.certFile), key: fs.readFileSync(ca.keyFile), keepAliveTimeout: 60_000 },
    (req, res) => res.end(`answer to ${req.url}`),
  );
  server.on('secureConnection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const s: Server = {
    url: new URL(`https://127.0.0.1:${port}/`),
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

function get(agent: https.Agent, url: URL, pathname: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(new URL(pathname, url), { agent }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-preconnect.'));
  ca = createTestCa(dir);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('requests take the pre-opened connections: three parallel requests, three connections in all', async () => {
  const server = await tlsServer();
  const agent = new PreconnectAgent({ ca: fs.readFileSync(ca.caFile) });
  agent.preconnect(server.url, 3);
  // The server has all three before any request is made; the requests add none.
  for (let i = 0; i < 200 && server.connections() < 3; i++) await new Promise((r) => setTimeout(r, 10));
  expect(server.connections()).toBe(3);
  const answers = await Promise.all(['/a', '/b', '/c'].map((p) => get(agent, server.url, p)));
  expect(answers).toEqual(['answer to /a', 'answer to /b', 'answer to /c']);
  expect(server.connections()).toBe(3);
  expect(agent.waiting()).toBe(0);
  agent.destroy();
});

test('a pre-opened connection to a server whose certificate is not trusted is dropped; the request fails as it would anyway', async () => {
  const server = await tlsServer();
  // No test CA: Node's own store does not trust the server.
  const agent = new PreconnectAgent();
  agent.preconnect(server.url, 1);
  const error = await get(agent, server.url, '/a').then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e,
  );
  expect(error?.code).toMatch(/CERT|SIGNATURE|ISSUER/);
  agent.destroy();
});

test('a connection opened to one port is never handed to a request for another', async () => {
  const one = await tlsServer();
  const two = await tlsServer();
  const agent = new PreconnectAgent({ ca: fs.readFileSync(ca.caFile) });
  agent.preconnect(one.url, 1);
  expect(await get(agent, two.url, '/x')).toBe('answer to /x');
  expect(agent.waiting()).toBe(1);
  expect(two.connections()).toBe(1);
  agent.destroy();
  expect(agent.waiting()).toBe(0);
});

test('plain http endpoints (moto in tests) open nothing', () => {
  const agent = new PreconnectAgent();
  agent.preconnect(new URL('http://127.0.0.1:9/'), 3);
  expect(agent.waiting()).toBe(0);
  agent.destroy();
});

describe("the loader's head start (preconnectFromHostConfig)", () => {
  /** The config as a root-owned file in root-owned directories, or as another user's. */
  const configFs = (text: string, uid = 0): CodeCacheFs => ({
    lstat: () => ({ uid: 0, mode: 0o755, isDirectory: () => true }),
    readNoFollow: () => ({ uid, mode: 0o100644, isFile: true, content: Buffer.from(text) }),
  });

  test('connections to the root-owned config’s iamEndpoint are taken over by the agent and used by the requests', async () => {
    const server = await tlsServer();
    const caOption = { ca: fs.readFileSync(ca.caFile) };
    preconnectFromHostConfig(
      '/etc/keymaker/config.json',
      2,
      configFs(JSON.stringify({ iamEndpoint: server.url.href })),
      caOption,
    );
    for (let i = 0; i < 200 && server.connections() < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const agent = new PreconnectAgent(caOption);
    expect(agent.waiting()).toBe(2);
    // Topping up to two opens none; the two requests add no connection.
    agent.preconnect(server.url, 2);
    expect(await Promise.all([get(agent, server.url, '/a'), get(agent, server.url, '/b')])).toEqual([
      'answer to /a',
      'answer to /b',
    ]);
    expect(server.connections()).toBe(2);
    agent.destroy();
  });

  test('a config another user owns opens nothing', async () => {
    const server = await tlsServer();
    preconnectFromHostConfig(
      '/etc/keymaker/config.json',
      2,
      configFs(JSON.stringify({ iamEndpoint: server.url.href }), 1000),
    );
    const agent = new PreconnectAgent();
    expect(agent.waiting()).toBe(0);
    agent.destroy();
  });
});
