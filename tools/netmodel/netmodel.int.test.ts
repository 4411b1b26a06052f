// The benchmark's network model (tools/netmodel/netmodel.cjs) on loopback: counts and ordering only,
// never a timing threshold (time is stepped by hand where the delay itself is checked).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createClientHelloCounter,
  createDelayRelay,
  startNetModel,
  type NetModel,
  type RelayClock,
} from './netmodel.cjs';

/** A plain HTTP server answering as moto does: `Connection: close` on every answer. */
async function closingServer(): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${Buffer.concat(body).toString()}`);
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`seen ${requests.length}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function get(
  url: string,
  agent: https.Agent,
  body: string,
): Promise<{ status: number; connection: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          connection: res.headers.connection,
          text: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('network model: relay + TLS terminator in front of a plain HTTP server', () => {
  let dir: string;
  let backend: Awaited<ReturnType<typeof closingServer>>;
  let model: NetModel;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmodel-'));
    backend = await closingServer();
    model = await startNetModel({ dir: path.join(dir, 'ca'), target: backend.url, rttMs: 4 });
  });
  afterAll(async () => {
    await model.close();
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('requests reach the server over TLS; keep-alive holds one connection and one handshake', async () => {
    model.reset();
    const ca = fs.readFileSync(model.caFile);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    const answers = [];
    for (const n of [1, 2, 3]) answers.push(await get(`${model.url}/path${n}`, agent, `Action=Call${n}`));
    agent.destroy();
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    // The backend's `Connection: close` is not passed on.
    expect(answers.map((a) => a.connection)).toEqual(['keep-alive', 'keep-alive', 'keep-alive']);
    expect(backend.requests.slice(-3)).toEqual([
      'POST /path1 Action=Call1',
      'POST /path2 Action=Call2',
      'POST /path3 Action=Call3',
    ]);
    expect(model.stats()).toMatchObject({
      connections: 1,
      clientHellos: 1,
      tlsConnections: 1,
      fullHandshakes: 1,
      resumedSessions: 0,
      requests: 3,
    });
  });

  test('each fresh connection counts one TCP connection and one ClientHello', async () => {
    model.reset();
    const ca = fs.readFileSync(model.caFile);
    for (let i = 0; i < 2; i++) {
      // No keep-alive and no session cache: as a fresh process per login.
      const agent = new https.Agent({ keepAlive: false, ca, maxCachedSessions: 0 });
      expect((await get(`${model.url}/`, agent, 'x')).status).toBe(200);
      agent.destroy();
    }
    expect(model.stats()).toMatchObject({ connections: 2, clientHellos: 2, fullHandshakes: 2, requests: 2 });
  });

  test('an untrusted client is refused: the CA is the run-time one', async () => {
    const agent = new https.Agent({ keepAlive: false });
    await expect(get(`${model.url}/`, agent, 'x')).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i);
    agent.destroy();
  });
});

/** A clock the test steps by hand: timers fire only inside advance(). */
function manualClock(): RelayClock & { advance(ms: number): void; pending(): number } {
  let now = 0;
  let nextId = 1;
  const timers = new Map<number, { due: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { due: now + ms, fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].due - b[1].due)) {
        if (t.due <= now) {
          timers.delete(id);
          t.fn();
        }
      }
    },
    pending: () => timers.size,
  };
}

const until = async (check: () => boolean): Promise<void> => {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
};

describe('delay relay', () => {
  test('delays each direction by RTT/2 and keeps the order of chunks', async () => {
    const received: string[] = [];
    let serverSide: net.Socket | undefined;
    const echo = net.createServer((socket) => {
      serverSide = socket;
      socket.on('data', (c: Buffer) => received.push(c.toString()));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const clock = manualClock();
    const relay = createDelayRelay({
      target: { host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port },
      rttMs: 100,
      recordEvents: true,
      clock,
    });
    const port = await relay.listen();
    const client = net.connect(port, '127.0.0.1');
    const fromServer: string[] = [];
    client.on('data', (c: Buffer) => fromServer.push(c.toString()));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));

    client.write('one');
    await until(() => clock.pending() > 0);
    clock.advance(49);
    await new Promise((resolve) => setImmediate(resolve));
    expect(relay.events).toEqual([]); // not before RTT/2
    client.write('two');
    await until(() => relay.stats().receivedUp === 6);
    expect(relay.events).toEqual([]);
    clock.advance(1); // 'one' is due, 'two' is not
    await until(() => received.join('') === 'one');
    expect(relay.events).toEqual([{ direction: 'up', bytes: 3 }]);
    clock.advance(50);
    await until(() => received.join('') === 'onetwo');

    await until(() => serverSide !== undefined);
    serverSide?.write('answer');
    await until(() => relay.stats().receivedDown === 6);
    expect(fromServer).toEqual([]); // the down direction is delayed too
    clock.advance(50);
    await until(() => fromServer.join('') === 'answer');
    expect(relay.events.map((e) => e.direction)).toEqual(['up', 'up', 'down']);
    expect(relay.stats()).toMatchObject({ connections: 1, clientHellos: 0, bytesUp: 6, bytesDown: 6 });

    client.destroy();
    await relay.close();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });
});

describe('ClientHello counter', () => {
  const record = (type: number, body: number[]): Buffer =>
    Buffer.from([type, 0x03, 0x01, body.length >> 8, body.length & 0xff, ...body]);

  test('counts handshake records of type ClientHello, split across chunks, until the stream is encrypted', () => {
    const counter = createClientHelloCounter();
    const hello = record(0x16, [0x01, 0, 0, 2, 0xaa, 0xbb]);
    counter.push(hello.subarray(0, 3));
    counter.push(hello.subarray(3, 7));
    counter.push(Buffer.concat([hello.subarray(7), record(0x16, [0x10, 0, 0, 0])])); // ClientKeyExchange
    expect(counter.count).toBe(1);
    counter.push(record(0x16, [0x01, 0, 0, 0])); // a second ClientHello on the same connection
    expect(counter.count).toBe(2);
    counter.push(record(0x14, [0x01])); // ChangeCipherSpec: what follows is encrypted
    counter.push(record(0x16, [0x01, 0, 0, 0]));
    expect(counter.count).toBe(2);
  });
});
