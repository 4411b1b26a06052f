'use strict';
// Start and stop a local moto server (IAM/STS test backend) from node.
//
//   const { startMoto } = require('./tools/moto/server.cjs');
//   const moto = await startMoto();          // { endpoint, port, pid, stop }
//   ...; await moto.stop();
//
// CLI: `node tools/moto/server.cjs` prints the endpoint on stdout (one line) and
// runs until SIGTERM/SIGINT.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');

const DEFAULT_REPO_ROOT = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = 30_000;
const STDERR_TAIL_CHARS = 4000;

/** Bind 127.0.0.1:0, read the port the OS picked, close, return it. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** GET url; resolves with the status code, rejects on connection errors. */
function httpGetStatus(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function ensureVenv(repoRoot) {
  const bin = path.join(repoRoot, '.venv', 'moto', 'bin', 'moto_server');
  if (!fs.existsSync(bin)) {
    execFileSync('bash', [path.join(__dirname, 'setup-venv.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return bin;
}

/**
 * Start a moto server on 127.0.0.1.
 * @param {{ repoRoot?: string, port?: number }} [opts]
 * @returns {Promise<{ endpoint: string, port: number, pid: number, stop: () => Promise<void> }>}
 */
async function startMoto(opts = {}) {
  const repoRoot = opts.repoRoot || DEFAULT_REPO_ROOT;
  const bin = ensureVenv(repoRoot);
  // A port picked by freePort() can be taken by someone else before moto binds it: retry then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin, opts.port || (await freePort()));
    } catch (err) {
      if (opts.port || !err.exitedEarly || attempt >= 3) throw err;
    }
  }
}

async function startOnce(bin, port) {
  const endpoint = `http://127.0.0.1:${port}`;

  const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let stderrTail = '';
  let stderrAll = ''; // startup output only; dropped once ready
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-STDERR_TAIL_CHARS);
    if (stderrAll !== null) stderrAll += d;
  });
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.on('error', (err) => {
      exited = { code: null, signal: null, err };
      resolve();
    });
  });

  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (!exited) child.kill('SIGKILL');
    }, 5000);
    await exitPromise;
    clearTimeout(t);
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      const why = exited.err ? exited.err.message : `exit code ${exited.code}, signal ${exited.signal}`;
      const err = new Error(`moto_server exited before it was ready (${why}). stderr tail:\n${stderrTail}`);
      err.exitedEarly = true;
      throw err;
    }
    try {
      const status = await httpGetStatus(`${endpoint}/moto-api/`, 1000);
      // Also require our own child's "Running on" line, so that another server already on this
      // port cannot make us believe ours is up.
      if (status && status < 500 && /Running on/.test(stderrAll)) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `moto_server did not answer on ${endpoint} within ${READY_TIMEOUT_MS / 1000}s. stderr tail:\n${stderrTail}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  stderrAll = null;
  return { endpoint, port, pid: child.pid, stop };
}

module.exports = { startMoto, freePort };

if (require.main === module) {
  // Install signal handlers before printing the endpoint, so a reader that kills us as soon as it
  // sees the line cannot beat them; a signal during startup stops the server once it is up.
  let moto = null;
  let stopping = false;
  const shutdown = () => {
    stopping = true;
    if (moto) moto.stop().then(() => process.exit(0));
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, shutdown);
  startMoto().then(
    (m) => {
      moto = m;
      if (stopping) return shutdown();
      process.stdout.write(`${m.endpoint}\n`);
    },
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
