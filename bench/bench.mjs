#!/usr/bin/env node
// The benchmark's driver (bench/run.sh calls it after installing and building everything):
// starts moto and the counting proxy, seeds the account, runs each measurement phase in its own
// throw-away sandbox (tools/sandbox/run.sh + bench/phase.mjs), and writes the markdown report.
//
//   node bench/bench.mjs [--runs 20] [--delay-runs 10] [--delay-ms 50] [--steady-runs 3] [--users 1000] [--groups 50]
//                        [--net-runs 5] [--rtts 0,20,80] [--out-dir bench/results] [--no-latest] [--command "npm run bench"]
//   --net-runs 0 skips the network-model phase (tools/netmodel: TLS + RTT in front of moto); --net-only runs
//   it alone and prints its raw JSON; --sync-only does the same for the two sync phases.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProxy } from './proxy.mjs';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const WORK = path.join(HERE, '.work');
const ORIG_VENV = path.join(WORK, 'venv-keymaker1');

/** A bad option: one line naming it and where the options are listed, exit 2 (no stack trace). */
function usageError(message) {
  process.stderr.write(`bench: ${message}; see bash bench/run.sh --help\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const out = {
    runs: 20,
    delayRuns: 10,
    delayMs: 50,
    steadyRuns: 3,
    netRuns: 5,
    rtts: '0,20,80',
    users: 1000,
    groups: 50,
    outDir: path.join(HERE, 'results'),
    latest: true,
    netOnly: false,
    syncOnly: false,
    command: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--no-latest') {
      out.latest = false;
      continue;
    }
    if (k === '--net-only') {
      out.netOnly = true;
      continue;
    }
    if (k === '--sync-only') {
      out.syncOnly = true;
      continue;
    }
    const key = k.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const v = argv[++i];
    if (!(key in out) || typeof out[key] === 'boolean') usageError(`unknown option ${k}`);
    if (v === undefined) usageError(`${k} needs a value`);
    if (key === 'rtts' && !/^\d+(,\d+)*$/.test(v)) usageError('--rtts takes milliseconds like 20,80');
    if (typeof out[key] === 'number' && !/^\d+$/.test(v))
      usageError(`${k} takes a whole number, not ${JSON.stringify(v)}`);
    out[key] = typeof out[key] === 'number' ? Number(v) : v;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/** Plain-HTTP control of the network model for the sandboxed phase: /reset, /stats, /rtt?ms=N. */
function netmodelControl(model) {
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://control');
    let body;
    if (url.pathname === '/reset') body = (model.reset(), { ok: true });
    else if (url.pathname === '/stats') body = model.stats();
    else if (url.pathname === '/rtt' && /^\d+$/.test(url.searchParams.get('ms') ?? ''))
      body = (model.setRtt(Number(url.searchParams.get('ms'))), { rttMs: Number(url.searchParams.get('ms')) });
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
}

function sandboxPhase(phase, extra, env) {
  const out = path.join(WORK, `${phase}.json`);
  fs.rmSync(out, { force: true });
  const argv = [
    path.join(REPO, 'tools/sandbox/run.sh'),
    process.execPath,
    path.join(HERE, 'phase.mjs'),
    phase,
    '--seed',
    path.join(WORK, 'seed.json'),
    '--proxy',
    env.proxy,
    '--out',
    out,
    ...extra,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], cwd: REPO });
    child.on('close', (code) => {
      if (code !== 0 || !fs.existsSync(out)) reject(new Error(`phase ${phase} failed (exit ${code})`));
      else resolve(JSON.parse(fs.readFileSync(out, 'utf8')));
    });
  });
}

function capture(argv) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function machineInfo() {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let machineId = '';
  for (const file of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      machineId = fs.readFileSync(file, 'utf8').trim();
      if (machineId) break;
    } catch {
      // not on this system: try the next file, else the host name
    }
  }
  if (!machineId) machineId = os.hostname();
  const shortId = createHash('sha256').update(machineId).digest('hex').slice(0, 8);
  return {
    shortId,
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    cpu,
    kernel: `${os.type()} ${os.release()} ${os.machine?.() ?? process.arch}`,
    os: (capture(['sh', '-c', '. /etc/os-release && echo "$PRETTY_NAME"']) ?? '').trim(),
  };
}

function versions() {
  const py = path.join(ORIG_VENV, 'bin/python');
  const pyver = (mod) => capture([py, '-c', `import importlib.metadata as m; print(m.version("${mod}"))`]);
  const motoPy = path.join(REPO, '.venv/moto/bin/python');
  const pkg = (p) => JSON.parse(fs.readFileSync(path.join(REPO, p), 'utf8')).version;
  return {
    node: process.version,
    python: capture([py, '-c', 'import platform; print(platform.python_version())']),
    keymaker1: pyver('keymaker'),
    boto3: pyver('boto3'),
    botocore: pyver('botocore'),
    moto: capture([motoPy, '-c', 'import importlib.metadata as m; print(m.version("moto"))']),
    ours: `@keymaker/cli ${pkg('packages/cli/package.json')}, @keymaker/host ${pkg('packages/host/package.json')}`,
    awsSdk: JSON.parse(fs.readFileSync(require.resolve('@aws-sdk/client-iam/package.json'), 'utf8')).version,
    commit: capture(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD']),
    dirty: (capture(['git', '-C', REPO, 'status', '--porcelain', '--', 'packages']) ?? '').length > 0,
  };
}

function bundleInfo() {
  const file = path.join(REPO, 'packages/cli/dist/keymaker-host.js');
  const text = fs.readFileSync(file, 'utf8');
  const imports = [...text.matchAll(/(?:from\s*|import\s*\(\s*|require\s*\(\s*)["']([^"']+)["']/g)].map((m) => m[1]);
  const external = [
    ...new Set(
      imports.filter(
        (s) =>
          !s.startsWith('node:') &&
          !/^(fs|os|path|crypto|http|https|net|tls|url|util|stream|events|buffer|child_process|zlib|dns|process|module|async_hooks|string_decoder|querystring|worker_threads|perf_hooks|readline|http2|assert|timers|tty|constants|vm)(\/|$)/.test(
            s,
          ),
      ),
    ),
  ];
  return {
    bytes: text.length,
    externalImports: external,
    mentionsYargs: /yargs/i.test(text),
    sdkClients: [...new Set([...text.matchAll(/@aws-sdk\/(client-[a-z0-9-]+)/g)].map((m) => m[1]))],
    compileCache: /enableCompileCache|NODE_COMPILE_CACHE/.test(text),
  };
}

async function main() {
  fs.mkdirSync(WORK, { recursive: true });
  const started = Date.now();
  // Collected before moto starts (spawnSync blocks the loop that drains moto's log pipe).
  const info = { machine: machineInfo(), versions: versions(), bundle: bundleInfo(), loadAverageStart: os.loadavg() };
  const { startMoto } = require(path.join(REPO, 'tools/moto/server.cjs'));
  const moto = await startMoto({ repoRoot: REPO });
  log(`moto at ${moto.endpoint}`);
  const server = createProxy({ target: moto.endpoint });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${server.address().port}`;
  log(`counting proxy at ${proxyUrl}`);
  try {
    // Never spawnSync while moto runs: moto logs every request to a pipe this process must keep draining.
    const seedCode = await new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        [
          path.join(HERE, 'seed.mjs'),
          '--endpoint',
          moto.endpoint,
          '--out',
          path.join(WORK, 'seed.json'),
          '--users',
          String(args.users),
          '--groups',
          String(args.groups),
        ],
        {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: process.env,
        },
      );
      child.on('close', resolve);
    });
    if (seedCode !== 0) throw new Error('seeding failed');
    const seed = JSON.parse(fs.readFileSync(path.join(WORK, 'seed.json'), 'utf8'));
    const env = { proxy: proxyUrl };
    if (args.netOnly) {
      // For working on the network model: that phase alone, its raw JSON on stdout, no report.
      const netlogin = await netloginPhase(env);
      const agentNss = await sandboxPhase('agent-nss', ['--runs', String(Math.max(args.runs, 20))], env);
      process.stdout.write(`${JSON.stringify({ netlogin, agentNss }, null, 2)}\n`);
      return;
    }
    if (args.syncOnly) {
      // For working on sync_groups: both tools' sync phases alone, their raw JSON on stdout, no report.
      const syncOurs = await sandboxPhase('sync-ours', ['--steady-runs', String(args.steadyRuns)], env);
      const syncOrig = await sandboxPhase('sync-orig', ['--steady-runs', String(args.steadyRuns)], env);
      const ratio = syncOurs.first.ms / syncOrig.first.ms;
      process.stdout.write(`${JSON.stringify({ syncOurs, syncOrig, firstSyncRatio: ratio }, null, 2)}\n`);
      return;
    }
    const lookup = await sandboxPhase(
      'lookup',
      ['--runs', String(args.runs), '--delay-runs', String(args.delayRuns), '--delay-ms', String(args.delayMs)],
      env,
    );
    const syncOurs = await sandboxPhase('sync-ours', ['--steady-runs', String(args.steadyRuns)], env);
    const syncOrig = await sandboxPhase('sync-orig', ['--steady-runs', String(args.steadyRuns)], env);
    const netlogin = args.netRuns > 0 ? await netloginPhase(env) : undefined;
    // The agent's NSS answer and memory (agent mode): with the network-model phase, in a sandbox of its own.
    const agentNss =
      args.netRuns > 0 ? await sandboxPhase('agent-nss', ['--runs', String(Math.max(args.runs, 20))], env) : undefined;
    const data = {
      args,
      command: process.env.BENCH_COMMAND ?? `node bench/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(),
      ...info,
      seed: summariseSeed(seed),
      lookup,
      syncOurs,
      syncOrig,
      netlogin,
      agentNss,
      loadAverage: os.loadavg(),
      totalSeconds: (Date.now() - started) / 1000,
    };
    fs.writeFileSync(path.join(WORK, 'results.json'), `${JSON.stringify(data, null, 2)}\n`);
    const { renderReport } = await import('./report.mjs');
    const markdown = renderReport(data);
    fs.mkdirSync(args.outDir, { recursive: true });
    const date = new Date().toISOString().slice(0, 10);
    const file = path.join(args.outDir, `${date}-${data.machine.shortId}.md`);
    fs.writeFileSync(file, markdown);
    if (args.latest) fs.writeFileSync(path.join(args.outDir, 'latest.md'), markdown);
    log(
      `wrote ${path.relative(REPO, file)}${args.latest ? ' and bench/results/latest.md' : ''} in ${data.totalSeconds.toFixed(0)} s`,
    );
    process.stdout.write(markdown);
  } finally {
    server.close();
    server.closeAllConnections?.();
    await moto.stop();
  }
}

/** The login command at realistic RTTs, over TLS, through tools/netmodel in front of the counting proxy. */
async function netloginPhase(env) {
  const { startNetModel } = require(path.join(REPO, 'tools/netmodel/netmodel.cjs'));
  const caDir = path.join(WORK, 'netmodel-ca');
  fs.rmSync(caDir, { recursive: true, force: true });
  const model = await startNetModel({ dir: caDir, target: env.proxy });
  // The lookup user must read the CA file: bench/.work is the repo's, so open the path to it.
  for (let dir = caDir; dir !== REPO && dir.startsWith(`${REPO}/`); dir = path.dirname(dir))
    fs.chmodSync(dir, fs.statSync(dir).mode | 0o055);
  const control = netmodelControl(model);
  await new Promise((resolve) => control.listen(0, '127.0.0.1', resolve));
  log(`network model at ${model.url} (control http://127.0.0.1:${control.address().port})`);
  try {
    return await sandboxPhase(
      'netlogin',
      [
        '--netmodel',
        model.url,
        '--netmodel-control',
        `http://127.0.0.1:${control.address().port}`,
        '--ca-file',
        model.caFile,
        '--net-runs',
        String(args.netRuns),
        '--rtts',
        args.rtts,
      ],
      env,
    );
  } finally {
    control.close();
    await model.close();
  }
}

function summariseSeed(seed) {
  const prefixed = seed.groups.filter((g) => g.prefixed);
  const uids = seed.users.map((u) => u.uid);
  const gids = prefixed.map((g) => g.gid);
  return {
    users: seed.users.length,
    prefixedGroups: prefixed.length,
    membersPerGroup: [...new Set(prefixed.map((g) => g.members.length))],
    callerArn: seed.callerArn,
    roleDescription: seed.role.description,
    seededInMs: seed.seededInMs,
    duplicateUids: uids.length - new Set(uids).size,
    duplicateGids: gids.length - new Set(gids).size,
    gidsEqualToSomeUid: gids.filter((g) => uids.includes(g)).length,
  };
}

main().catch((error) => {
  log(`FAILED: ${error.stack ?? error}`);
  process.exit(1);
});
