#!/usr/bin/env node
// Counting proxy in front of moto for the benchmark.
//
//   node bench/proxy.mjs --target http://127.0.0.1:PORT [--port 0] [--delay-ms 0]
//
// Prints its own URL (http://127.0.0.1:PORT) as one line on stdout, then forwards every request to
// the target. For each request it reads the API action from the form body (IAM/STS query protocol:
// `Action=ListSSHPublicKeys&...`, or the X-Amz-Target header of JSON protocols) and the service from
// the SigV4 credential scope, and counts it. An optional fixed delay is added before each request is
// forwarded (models a host far from IAM's endpoint).
//
// It also tracks requests in flight: a "wave" starts each time the in-flight count rises from 0,
// so the number of waves in a window is the number of sequential round trips the client made;
// "busyMs" is the time during which at least one request was in flight (time spent waiting for IAM).
//
// Control endpoints (not counted, not forwarded):
//   POST/GET /__bench/reset          zero the counters
//   GET      /__bench/stats          JSON { requests, byAction, waves, busyMs, maxInFlight, durationsMs, delayMs }
//   POST/GET /__bench/delay?ms=N     change the per-request delay
//   POST/GET /__bench/fail?action=GetRole&code=Throttling[&status=400]   answer that action with an error
//                                    (no action: stop failing)
import http from 'node:http';

function parseArgs(argv) {
  const out = { target: undefined, port: 0, delayMs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    if (arg === '--target') out.target = next();
    else if (arg === '--port') out.port = Number(next());
    else if (arg === '--delay-ms') out.delayMs = Number(next());
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!out.target) throw new Error('usage: proxy.mjs --target URL [--port N] [--delay-ms N]');
  return out;
}

export function actionOf(headers, body) {
  const target = headers['x-amz-target'];
  if (typeof target === 'string' && target) return target.split('.').pop();
  const text = body.toString('utf8');
  const match = /(?:^|&)Action=([^&]*)/.exec(text);
  if (match) return decodeURIComponent(match[1].replace(/\+/g, ' '));
  return 'unknown';
}

export function serviceOf(headers) {
  const auth = headers.authorization;
  const match = typeof auth === 'string' ? /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(auth) : null;
  return match ? match[1] : 'unsigned';
}

export function createProxy({ target, delayMs = 0 }) {
  const upstream = new URL(target);
  let state;
  const reset = () => {
    state = { requests: 0, byAction: {}, waves: 0, busyMs: 0, maxInFlight: 0, durationsMs: [], errors: 0 };
    busySince = inFlight > 0 ? performance.now() : undefined;
  };
  let failures;
  let inFlight = 0;
  let busySince;
  reset();

  const begin = () => {
    if (inFlight === 0) {
      state.waves += 1;
      busySince = performance.now();
    }
    inFlight += 1;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
  };
  const end = () => {
    inFlight -= 1;
    if (inFlight === 0 && busySince !== undefined) {
      state.busyMs += performance.now() - busySince;
      busySince = undefined;
    }
  };

  const control = (req, res, url) => {
    if (url.pathname === '/__bench/reset') {
      reset();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    } else if (url.pathname === '/__bench/stats') {
      const busyMs = state.busyMs + (busySince !== undefined ? performance.now() - busySince : 0);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ...state, busyMs, inFlight, delayMs }));
    } else if (url.pathname === '/__bench/fail') {
      // Fault injection: answer this action with an AWS error instead of forwarding (no action: stop).
      const action = url.searchParams.get('action');
      failures = action
        ? {
            action,
            code: url.searchParams.get('code') ?? 'Throttling',
            status: Number(url.searchParams.get('status') ?? 400),
          }
        : undefined;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ failures: failures ?? null }));
    } else if (url.pathname === '/__bench/delay') {
      delayMs = Number(url.searchParams.get('ms') ?? 0);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ delayMs }));
    } else {
      res.writeHead(404).end();
    }
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://proxy');
    if (url.pathname.startsWith('/__bench/')) return control(req, res, url);
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const key = `${serviceOf(req.headers)}:${actionOf(req.headers, body)}`;
      state.requests += 1;
      state.byAction[key] = (state.byAction[key] ?? 0) + 1;
      const started = performance.now();
      begin();
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        state.durationsMs.push(Math.round((performance.now() - started) * 100) / 100);
        end();
      };
      res.on('close', finish);
      const forward = () => {
        const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
        const up = http.request(
          { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
          (upRes) => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on('error', (error) => {
          state.errors += 1;
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`bench proxy: ${error.message}`);
        });
        up.end(body);
      };
      const action = key.split(':').pop();
      if (failures && failures.action === action) {
        state.injected = (state.injected ?? 0) + 1;
        const xml = `<ErrorResponse><Error><Type>Sender</Type><Code>${failures.code}</Code><Message>injected by the bench proxy</Message></Error><RequestId>bench</RequestId></ErrorResponse>`;
        res.writeHead(failures.status, { 'content-type': 'text/xml' }).end(xml);
        return;
      }
      if (delayMs > 0) setTimeout(forward, delayMs);
      else forward();
    });
  });
  server.keepAliveTimeout = 5000;
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parseArgs(process.argv.slice(2));
  const server = createProxy(args);
  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
