'use strict';
// A fault-injecting HTTP proxy for tests: sits in front of moto (IAM/STS) and
// can refuse connections, hang, answer 500/503, answer IAM Throttling, answer
// slowly, or fail only the Nth matching request. Also a fake EC2 instance
// metadata endpoint (IMDSv2) with the same faults. Used by fault tests through
// real CLI processes; everything listens on 127.0.0.1 only.
const http = require('node:http');
const net = require('node:net');

/**
 * fault: { kind: 'none'|'refuse'|'hang'|'status'|'throttle'|'slow'|'reset',
 *          status?: number, delayMs?: number,
 *          action?: string  (only requests with this IAM/STS Action),
 *          nth?: number     (only the Nth matching request, 1-based; default: all),
 *          times?: number   (only this many matching requests after the Nth; default: all) }
 */
function createFaultProxy({ target, port = 0 } = {}) {
  const targetUrl = target ? new URL(target) : undefined;
  let fault = { kind: 'none' };
  let matched = 0;
  const counts = {};
  let total = 0;
  const sockets = new Set();

  function actionOf(req, body) {
    const fromBody = /(?:^|&)Action=([A-Za-z]+)/.exec(body);
    if (fromBody) return fromBody[1];
    return new URL(req.url, 'http://x').searchParams.get('Action') || req.method + ' ' + req.url.split('?')[0];
  }

  function faultApplies(action) {
    if (fault.kind === 'none') return false;
    if (fault.action && fault.action !== action) return false;
    matched += 1;
    const first = fault.nth || 1;
    if (matched < first) return false;
    if (fault.times !== undefined && matched >= first + fault.times) return false;
    return true;
  }

  function forward(req, res, body) {
    if (!targetUrl) {
      res.writeHead(404).end();
      return;
    }
    const upstream = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode || 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = actionOf(req, body.toString('latin1'));
      total += 1;
      counts[action] = (counts[action] || 0) + 1;
      if (!faultApplies(action)) return forward(req, res, body);
      switch (fault.kind) {
        case 'hang':
          return; // never answers; the client's timeout or deadline must end it
        case 'reset':
          return req.socket.destroy();
        case 'status':
          res.writeHead(fault.status || 500, { 'content-type': 'text/plain' });
          return res.end('injected failure');
        case 'throttle':
          res.writeHead(400, { 'content-type': 'text/xml' });
          return res.end(
            '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>' +
              '<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault</RequestId></ErrorResponse>',
          );
        case 'slow':
          return setTimeout(() => forward(req, res, body), fault.delayMs || 1000);
        default:
          return forward(req, res, body);
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  let boundPort = port;
  let refusing = false;
  const api = {
    get url() {
      return `http://127.0.0.1:${boundPort}`;
    },
    get port() {
      return boundPort;
    },
    stats: () => ({ total, counts: { ...counts } }),
    resetStats() {
      total = 0;
      for (const key of Object.keys(counts)) delete counts[key];
    },
    /** Sets the fault; 'refuse' closes the listening socket so connects get ECONNREFUSED. */
    async setFault(next) {
      fault = { ...next };
      matched = 0;
      if (fault.kind === 'refuse' && !refusing) {
        refusing = true;
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(() => resolve()));
      } else if (fault.kind !== 'refuse' && refusing) {
        refusing = false;
        await new Promise((resolve, reject) => server.listen(boundPort, '127.0.0.1', resolve).once('error', reject));
      }
    },
    async start() {
      await new Promise((resolve, reject) => server.listen(boundPort, '127.0.0.1', resolve).once('error', reject));
      boundPort = server.address().port;
      return api;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      if (!refusing) await new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}

/**
 * A fake IMDSv2 answering the token PUT, the role name and its credentials
 * (the credentials given, e.g. moto assumed-role ones), behind a fault proxy
 * so the same faults apply. Resolves to the proxy (url, setFault, stop...).
 */
async function startFakeImds({ roleName = 'keymaker-test-role', credentials, region = 'us-east-1' }) {
  const local = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    const roles = '/latest/meta-data/iam/security-credentials/';
    if (req.method === 'PUT' && path === '/latest/api/token') return res.end('fake-imds-token');
    if (path === roles || path === roles.slice(0, -1)) return res.end(roleName);
    if (path === roles + roleName) {
      return res.end(
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: credentials.accessKeyId,
          SecretAccessKey: credentials.secretAccessKey,
          Token: credentials.sessionToken,
          Expiration: new Date(Date.now() + 3600_000).toISOString(),
          LastUpdated: new Date().toISOString(),
        }),
      );
    }
    if (path === '/latest/meta-data/placement/region') return res.end(region);
    res.writeHead(404).end();
  });
  await new Promise((resolve) => local.listen(0, '127.0.0.1', resolve));
  const proxy = await createFaultProxy({ target: `http://127.0.0.1:${local.address().port}` }).start();
  const stopProxy = proxy.stop;
  proxy.stop = async () => {
    await stopProxy();
    await new Promise((resolve) => local.close(() => resolve()));
  };
  return proxy;
}

/** A port with nothing listening (connections are refused). */
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

module.exports = { createFaultProxy, startFakeImds, closedPort };
