'use strict';
// A network model for the benchmark (issue 14): this kernel has no netem, so distance to IAM is
// modelled in user space, in front of the local emulator:
//
//   client ──TCP──▶ delay relay (RTT/2 each way, per segment, order kept; counts connections and
//                   ClientHellos) ──TCP──▶ TLS terminator (a throw-away test CA; counts full and resumed
//                   handshakes; keeps connections alive as IAM does, dropping the emulator's
//                   `Connection: close`) ──HTTP──▶ target (the counting proxy, then moto)
//
// Nothing here asserts or depends on timing; the tests check counts and ordering.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');

/**
 * Makes a CA and a server certificate for 127.0.0.1/localhost in `dir` with the openssl CLI (argument
 * arrays, no shell). The CA exists only for this run: trust it through NODE_EXTRA_CA_CERTS (Node) and
 * AWS_CA_BUNDLE (boto3). Returns the file paths.
 */
function createTestCa(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = (name) => path.join(dir, name);
  const openssl = (args) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed (${r.status}): ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=keymaker bench throw-away CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl(['req', '-new', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(
    file('server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl([
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.pem'),
    '-days',
    '2',
    '-extfile',
    file('server.ext'),
  ]);
  // Readable by the unprivileged lookup user (the key is a throw-away test key for loopback only).
  for (const name of ['ca.pem', 'server.pem']) fs.chmodSync(file(name), 0o644);
  return { caFile: file('ca.pem'), certFile: file('server.pem'), keyFile: file('server.key') };
}

/**
 * Counts TLS ClientHello records in a client-to-server byte stream: records of content type 0x16
 * (handshake) whose first handshake byte is 0x01, seen before the client's first ChangeCipherSpec or
 * application-data record (after those, handshake records are encrypted and their bytes mean nothing).
 */
function createClientHelloCounter() {
  let pending = Buffer.alloc(0);
  let skip = 0; // body bytes of the current record still to pass over
  let encrypted = false;
  let count = 0;
  return {
    get count() {
      return count;
    },
    push(chunk) {
      if (encrypted) return;
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, pending.length);
          pending = pending.subarray(n);
          skip -= n;
          if (skip > 0) return;
        }
        if (pending.length < 6) return; // 5-byte header plus the handshake type
        const type = pending[0];
        const length = pending.readUInt16BE(3);
        if (type === 0x14 || type === 0x17) {
          encrypted = true;
          pending = Buffer.alloc(0);
          return;
        }
        if (type === 0x16 && pending[5] === 0x01) count += 1;
        pending = pending.subarray(5);
        skip = length;
      }
    },
  };
}

/**
 * Delays each chunk by `delayMs` in one direction, in order: one FIFO per direction, drained by a
 * single timer, so a later chunk never overtakes an earlier one whatever the timer granularity.
 * `end` is queued like data, so a half-close also arrives after the delay.
 */
const realClock = { now: () => performance.now(), setTimeout, clearTimeout };

function createDelayedPipe(destination, getDelayMs, onDeliver, clock = realClock) {
  const queue = [];
  let timer;
  let ended = false;
  const drain = () => {
    timer = undefined;
    const now = clock.now();
    while (queue.length > 0 && queue[0].due <= now) {
      const item = queue.shift();
      if (destination.destroyed || destination.writableEnded) continue;
      if (item.chunk === null) destination.end();
      else {
        onDeliver?.(item.chunk);
        destination.write(item.chunk);
      }
    }
    if (queue.length > 0) timer = clock.setTimeout(drain, Math.max(0, queue[0].due - clock.now()));
  };
  const enqueue = (chunk) => {
    queue.push({ due: clock.now() + getDelayMs(), chunk });
    if (timer === undefined) timer = clock.setTimeout(drain, Math.max(0, queue[0].due - clock.now()));
  };
  return {
    write: (chunk) => enqueue(chunk),
    end: () => {
      if (ended) return;
      ended = true;
      enqueue(null);
    },
    clear: () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      queue.length = 0;
    },
  };
}

/**
 * A TCP relay to `target` ({ host, port }) that delays each direction by rttMs/2 per chunk.
 * stats(): connections accepted, ClientHello records, bytes received and bytes delivered each way; `events` (for tests) lists
 * delivered chunks as { direction: 'up' | 'down', bytes } in delivery order. `clock` (now, setTimeout,
 * clearTimeout) lets the tests step time by hand instead of measuring it.
 */
function createDelayRelay({ target, rttMs = 0, recordEvents = false, clock = realClock }) {
  let rtt = rttMs;
  let stats;
  const events = [];
  const reset = () => {
    stats = { connections: 0, clientHellos: 0, receivedUp: 0, receivedDown: 0, bytesUp: 0, bytesDown: 0 };
    events.length = 0;
  };
  reset();
  const sockets = new Set();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    stats.connections += 1;
    const hellos = createClientHelloCounter();
    const upstream = net.connect({ port: target.port, host: target.host, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const delayed = (destination, direction, counter) =>
      createDelayedPipe(
        destination,
        () => rtt / 2,
        (chunk) => {
          stats[counter] += chunk.length;
          if (recordEvents) events.push({ direction, bytes: chunk.length });
        },
        clock,
      );
    const toUpstream = delayed(upstream, 'up', 'bytesUp');
    const toClient = delayed(client, 'down', 'bytesDown');
    client.on('data', (chunk) => {
      stats.receivedUp += chunk.length;
      const before = hellos.count;
      hellos.push(chunk);
      stats.clientHellos += hellos.count - before;
      toUpstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      stats.receivedDown += chunk.length;
      toClient.write(chunk);
    });
    // A FIN (or a close) reaches the other side after the same delay as the data before it.
    client.on('end', () => toUpstream.end());
    upstream.on('end', () => toClient.end());
    let open = 2;
    const closed = (pipe) => () => {
      pipe.end();
      open -= 1;
      if (open === 0) {
        toUpstream.clear();
        toClient.clear();
        sockets.delete(client);
        sockets.delete(upstream);
      }
    };
    client.on('close', closed(toUpstream));
    upstream.on('close', closed(toClient));
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
  });
  return {
    server,
    events,
    stats: () => ({ ...stats, rttMs: rtt }),
    reset,
    setRtt(ms) {
      rtt = ms;
    },
    async listen(port = 0, host = '127.0.0.1') {
      await new Promise((resolve) => server.listen(port, host, resolve));
      return server.address().port;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

/**
 * A TLS terminator in front of a plain HTTP `target` URL. Answers with keep-alive as IAM does: the
 * target's `Connection: close` (moto sends it on every answer) is not passed on. stats(): full
 * handshakes, resumed sessions, TLS connections, requests.
 */
function createTlsTerminator({ target, certFile, keyFile, keepAliveTimeoutMs = 60_000 }) {
  const upstream = new URL(target);
  let stats;
  const reset = () => {
    stats = { tlsConnections: 0, fullHandshakes: 0, resumedSessions: 0, requests: 0 };
  };
  reset();
  const server = https.createServer(
    { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), keepAliveTimeout: keepAliveTimeoutMs },
    (req, res) => {
      stats.requests += 1;
      const headers = { ...req.headers, host: upstream.host };
      delete headers.connection;
      const up = http.request(
        { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers, agent: false },
        (upRes) => {
          const out = {};
          for (const [name, value] of Object.entries(upRes.headers)) {
            if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
          }
          res.writeHead(upRes.statusCode ?? 502, out);
          upRes.pipe(res);
        },
      );
      up.on('error', (error) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`netmodel terminator: ${error.message}`);
      });
      req.pipe(up);
    },
  );
  server.headersTimeout = keepAliveTimeoutMs + 1000;
  server.on('secureConnection', (socket) => {
    stats.tlsConnections += 1;
    if (socket.isSessionReused()) stats.resumedSessions += 1;
    else stats.fullHandshakes += 1;
  });
  return {
    server,
    stats: () => ({ ...stats }),
    reset,
    async listen(port = 0, host = '127.0.0.1') {
      await new Promise((resolve) => server.listen(port, host, resolve));
      return server.address().port;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The whole model: test CA in `dir`, terminator in front of `target`, relay in front of the terminator.
 * `url` is what clients use (https://127.0.0.1:<relay port>); stats() merges both counters.
 */
async function startNetModel({ dir, target, rttMs = 0 }) {
  const ca = createTestCa(dir);
  const terminator = createTlsTerminator({ target, certFile: ca.certFile, keyFile: ca.keyFile });
  const terminatorPort = await terminator.listen();
  const relay = createDelayRelay({ target: { host: '127.0.0.1', port: terminatorPort }, rttMs });
  const relayPort = await relay.listen();
  return {
    url: `https://127.0.0.1:${relayPort}`,
    caFile: ca.caFile,
    setRtt: (ms) => relay.setRtt(ms),
    reset() {
      relay.reset();
      terminator.reset();
    },
    stats: () => ({ ...relay.stats(), ...terminator.stats() }),
    async close() {
      await relay.close();
      await terminator.close();
    },
  };
}

module.exports = { createTestCa, createClientHelloCounter, createDelayRelay, createTlsTerminator, startNetModel };
