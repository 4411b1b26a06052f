#!/usr/bin/env node
// One measurement phase, run as root INSIDE a throw-away sandbox (tools/sandbox/run.sh), so the host
// config it writes to /etc/keymaker, the cache under /var/cache, and the 1,000 accounts and groups the
// syncs create never touch the machine. bench/bench.mjs starts it; it talks to the counting proxy
// (bench/proxy.mjs) over loopback and writes its figures as JSON.
//
//   node bench/phase.mjs lookup      --seed S.json --proxy URL --out R.json [--runs 20] [--delay-runs 10] [--delay-ms 50]
//   node bench/phase.mjs sync-ours   --seed S.json --proxy URL --out R.json [--steady-runs 3]
//   node bench/phase.mjs sync-orig   --seed S.json --proxy URL --out R.json [--steady-runs 3]
//   node bench/phase.mjs netlogin    --seed S.json --proxy URL --out R.json --netmodel URL --netmodel-control URL
//                                    --ca-file CA.pem [--net-runs 5] [--rtts 0,20,80]
//   node bench/phase.mjs agent-nss   --seed S.json --proxy URL --out R.json [--runs 20]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mapLimit } from './seed.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE = process.execPath;
const OURS_HOST = path.join(REPO, 'packages/cli/dist/keymaker-host.js');
const ORIG = path.join(REPO, 'bench/.work/venv-keymaker1/bin/keymaker');
const HOST_CONFIG = '/etc/keymaker/config.json';
const SYSLOG_SOCKET = '/run/bench-syslog.sock';
// Where our lookup may keep its login-to-login cache (HostPaths.cacheDir); emptied for "cold cache" runs.
const CACHE_DIRS = (process.env.BENCH_CACHE_DIRS ?? '/var/cache/keymaker').split(':').filter(Boolean);
// sshd runs the AuthorizedKeysCommand with a reset environment.
const SSHD_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

function parseArgs(argv) {
  const out = { phase: argv[0], runs: 20, delayRuns: 10, delayMs: 50, steadyRuns: 3, netRuns: 5, rtts: '0,20,80' };
  for (let i = 1; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    const key = k.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = ['runs', 'delayRuns', 'delayMs', 'steadyRuns', 'netRuns'].includes(key) ? Number(v) : v;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const seed = JSON.parse(fs.readFileSync(args.seed, 'utf8'));
const log = (msg) => process.stderr.write(`[phase ${args.phase}] ${msg}\n`);

// ---------------------------------------------------------------- helpers
async function proxy(pathname) {
  const res = await fetch(`${args.proxy}${pathname}`);
  return res.json();
}

/** Spawns argv, returns { code, stdout, stderr, ms } with ms = spawn to exit (wall). */
function run(argv, { env, input } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdin.on('error', () => {}); // EPIPE when the child exits without reading its (empty) input
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.on('error', (error) =>
      resolve({ code: -1, stdout: '', stderr: String(error), ms: performance.now() - started }),
    );
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : -1),
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        ms: performance.now() - started,
      }),
    );
    child.stdin.end(input ?? '');
  });
}

function sh(argv, options = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', ...options });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export function stats(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0 };
  const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
  const median = v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  return { n: v.length, median, p95: at(0.95), min: v[0], max: v[v.length - 1] };
}

const keyId = (line) => line.trim().split(/\s+/).slice(0, 2).join(' ');
const expectedKeys = new Set(seed.alice.active.map(keyId));

/** True when stdout is exactly alice's active keys (comments ignored, order free, no extras). */
function keysOk(stdout) {
  const lines = stdout.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  const got = lines.map(keyId);
  return got.length === expectedKeys.size && new Set(got).size === got.length && got.every((k) => expectedKeys.has(k));
}

function clearCache() {
  for (const dir of CACHE_DIRS) {
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}
/**
 * Our cache is written only by root processes (the group sync refreshes it every run; the lookup,
 * running as the sshd lookup user, only reads it), so "warm" means: as after the scheduled sync ran.
 */
async function warmCache() {
  for (const dir of CACHE_DIRS) fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
  const r = await run(tools.ours.argv(['sync_groups']), { env: tools.ours.env });
  if (r.code !== 0) log(`warming the cache with sync_groups: exit ${r.code} ${r.stderr.slice(0, 300)}`);
}
function cacheFiles() {
  return CACHE_DIRS.flatMap((dir) => (fs.existsSync(dir) ? fs.readdirSync(dir).map((e) => path.join(dir, e)) : []));
}

// ---------------------------------------------------------------- environment of the tools
/** The role session's credentials as an AWS credentials file. */
function credentialsIni(c = seed.credentials) {
  return `[default]\naws_access_key_id = ${c.accessKeyId}\naws_secret_access_key = ${c.secretAccessKey}\naws_session_token = ${c.sessionToken}\n`;
}

function writeHostConfig(credentials = seed.credentials) {
  fs.mkdirSync('/etc/keymaker', { recursive: true, mode: 0o755 });
  // Host commands take credentials from the host config's one source only (never the environment):
  // the instance role's credentials in a file, as on a host without IMDS.
  const sharedCredentialsFile = '/etc/keymaker/credentials';
  fs.writeFileSync(sharedCredentialsFile, credentialsIni(credentials), { mode: 0o600 });
  const config = {
    version: 1,
    region: 'us-east-1',
    iamEndpoint: args.proxy,
    stsEndpoint: args.proxy,
    sharedCredentialsFile,
    syslogSocket: SYSLOG_SOCKET,
  };
  fs.writeFileSync(HOST_CONFIG, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
  return config;
}

/** A syslog listener, so logger(1) calls succeed as on a real host (there is no /dev/log here). */
function startSyslogSink() {
  const script = [
    'import socket, os, sys',
    `p = ${JSON.stringify(SYSLOG_SOCKET)}`,
    'os.path.exists(p) and os.unlink(p)',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(p); os.chmod(p, 0o666)',
    'sys.stdout.write("ready\\n"); sys.stdout.flush()',
    // Kept in the sandbox's /run, for the phases that report the agent's reasons.
    'log = open("/run/bench-syslog.log", "ab", buffering=0)',
    'while True: log.write(s.recv(65536) + b"\\n")',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], detached: false });
  child.unref();
  return new Promise((resolve) => child.stdout.once('data', () => resolve(child)));
}

const creds = seed.credentials;
const credEnv = {
  AWS_ACCESS_KEY_ID: creds.accessKeyId,
  AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
  AWS_SESSION_TOKEN: creds.sessionToken,
};
// Ours reads region, endpoints and credentials from /etc/keymaker/config.json (on EC2 both tools would get
// credentials from the instance metadata service instead).
const oursEnv = { PATH: SSHD_PATH };
// The original reads everything from the environment (boto3 >= 1.28 honours AWS_ENDPOINT_URL_<SERVICE>).
const origEnv = {
  PATH: SSHD_PATH,
  ...credEnv,
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_ENDPOINT_URL_IAM: args.proxy,
  AWS_ENDPOINT_URL_STS: args.proxy,
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
};

const tools = {
  ours: { argv: (cmd) => [NODE, OURS_HOST, ...cmd], env: oursEnv },
  orig: { argv: (cmd) => [ORIG, ...cmd], env: origEnv },
};

/**
 * One measured process: proxy counters reset before, read after; `counters` (optional) adds another
 * set of counters reset and read the same way (the network model's).
 */
async function measuredArgv(argv, env, counters) {
  await proxy('/__bench/reset');
  await counters?.reset();
  const r = await run(argv, { env });
  const p = await proxy('/__bench/stats');
  const more = (await counters?.read()) ?? {};
  return {
    ms: r.ms,
    code: r.code,
    ok: keysOk(r.stdout),
    stderr: r.stderr.slice(0, 400),
    requests: p.requests,
    waves: p.waves,
    busyMs: p.busyMs,
    maxInFlight: p.maxInFlight,
    byAction: p.byAction,
    outsideIamMs: r.ms - p.busyMs,
    ...more,
  };
}

async function measured(tool, cmd, { before } = {}) {
  before?.();
  return measuredArgv(tools[tool].argv(cmd), tools[tool].env);
}

function summarise(runs) {
  const first = runs[0] ?? {};
  return {
    runs: runs.length,
    allOk: runs.every((r) => r.ok && r.code === 0),
    failures: runs
      .filter((r) => !(r.ok && r.code === 0))
      .slice(0, 2)
      .map((r) => ({ code: r.code, stderr: r.stderr })),
    wallMs: stats(runs.map((r) => r.ms)),
    outsideIamMs: stats(runs.map((r) => r.outsideIamMs)),
    busyMs: stats(runs.map((r) => r.busyMs)),
    requests: stats(runs.map((r) => r.requests)),
    waves: stats(runs.map((r) => r.waves)),
    maxInFlight: Math.max(0, ...runs.map((r) => r.maxInFlight)),
    byAction: first.byAction,
  };
}

async function series(label, tool, n, { cold = false } = {}) {
  const runs = [];
  for (let i = 0; i < n; i++) {
    runs.push(await measured(tool, ['get_authorized_keys', 'alice'], { before: cold ? clearCache : undefined }));
  }
  const s = summarise(runs);
  log(
    `${label}: median ${s.wallMs.median?.toFixed(1)} ms, p95 ${s.wallMs.p95?.toFixed(1)} ms, ${s.requests.median} requests in ${s.waves.median} waves, ok=${s.allOk}`,
  );
  return s;
}

async function peakRss(tool, n, { cold = false } = {}) {
  const values = [];
  for (let i = 0; i < n; i++) {
    if (cold) clearCache();
    const r = await run(['/usr/bin/time', '-f', '__RSS_KB=%M', ...tools[tool].argv(['get_authorized_keys', 'alice'])], {
      env: tools[tool].env,
    });
    const m = /__RSS_KB=(\d+)/.exec(r.stderr);
    if (m) values.push(Number(m[1]));
  }
  return stats(values);
}

async function concurrent(tool, n, { cold = false } = {}) {
  if (cold) clearCache();
  await proxy('/__bench/reset');
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, () => run(tools[tool].argv(['get_authorized_keys', 'alice']), { env: tools[tool].env })),
  );
  const ms = performance.now() - started;
  const p = await proxy('/__bench/stats');
  const ok = results.filter((r) => r.code === 0 && keysOk(r.stdout)).length;
  log(
    `${n} concurrent ${tool}${cold ? ' (cold cache)' : ''}: ${ok}/${n} correct in ${ms.toFixed(0)} ms, ${p.requests} requests`,
  );
  return {
    n,
    ok,
    batchMs: ms,
    wallMs: stats(results.map((r) => r.ms)),
    requests: p.requests,
    failures: results
      .filter((r) => !(r.code === 0 && keysOk(r.stdout)))
      .slice(0, 3)
      .map((r) => ({ code: r.code, stdout: r.stdout.slice(0, 200), stderr: r.stderr.slice(0, 300) })),
  };
}

// ---------------------------------------------------------------- phases
/** sshd only runs the lookup for a user that exists locally: alice's account, with the UID both tools derive. */
function addAlice() {
  sh([
    'useradd',
    '--no-create-home',
    '--non-unique',
    '--uid',
    String(seed.alice.uid),
    '--gid',
    'users',
    '--shell',
    '/bin/bash',
    'alice',
  ]);
}

async function lookupPhase() {
  writeHostConfig();
  await startSyslogSink();
  addAlice();
  recordManaged([{ ...seed.alice, name: 'alice' }]);
  const result = { phase: 'lookup', delayMs: args.delayMs, cacheDirs: CACHE_DIRS };

  // Warm the page cache (first exec of each binary reads it from disk), and check the answers.
  for (const tool of ['ours', 'orig']) {
    const r = await measured(tool, ['get_authorized_keys', 'alice'], { before: clearCache });
    result[`check_${tool}`] = { code: r.code, ok: r.ok, stderr: r.stderr, byAction: r.byAction };
    log(`check ${tool}: exit ${r.code}, keys ${r.ok ? 'correct' : 'WRONG'} ${r.ok ? '' : r.stderr}`);
  }
  const checkUid = await run(tools.orig.argv(['get_uid', 'alice']), { env: origEnv });
  result.origUid = { printed: checkUid.stdout.trim(), expected: seed.alice.uid, stderr: checkUid.stderr.slice(0, 300) };

  // Start-up cost alone: node loading (parsing, evaluating) the whole host bundle without running a command.
  const load = [];
  const loadArgv = [NODE, '-e', `import(${JSON.stringify(`file://${OURS_HOST}`)})`];
  for (let i = 0; i < args.runs; i++) load.push((await run(loadArgv, { env: { PATH: SSHD_PATH } })).ms);
  result.bundleLoad = stats(load);

  // Refusals and failure paths (one run each).
  const lookupOf = async (tool, user) => {
    await proxy('/__bench/reset');
    const r = await run(tools[tool].argv(['get_authorized_keys', user]), { env: tools[tool].env });
    const p = await proxy('/__bench/stats');
    const printed = r.stdout.split('\n').filter((l) => l.trim()).length;
    const last = r.stderr.trim().split('\n').pop() ?? '';
    return {
      code: r.code,
      printedKeys: printed,
      requests: p.requests,
      injected: p.injected ?? 0,
      lastStderr: last.slice(0, 200),
    };
  };
  result.refusals = {
    outsider: { ours: await lookupOf('ours', seed.outsider.name), orig: await lookupOf('orig', seed.outsider.name) },
    noSuchUser: { ours: await lookupOf('ours', 'nosuchuser'), orig: await lookupOf('orig', 'nosuchuser') },
  };
  await proxy('/__bench/fail?action=GetRole&code=Throttling');
  clearCache();
  result.refusals.outsiderGetRoleThrottled = {
    ours: await lookupOf('ours', seed.outsider.name),
    orig: await lookupOf('orig', seed.outsider.name),
  };
  await proxy('/__bench/fail');
  clearCache();
  log(`refusals: ${JSON.stringify(result.refusals)}`);

  const base = [];
  for (let i = 0; i < 3; i++) await run([NODE, '-e', '0']);
  for (let i = 0; i < args.runs; i++) base.push((await run([NODE, '-e', '0'], { env: { PATH: SSHD_PATH } })).ms);
  result.nodeBaseline = stats(base);
  log(`node -e 0: median ${result.nodeBaseline.median.toFixed(1)} ms`);

  await proxy(`/__bench/delay?ms=0`);
  result.zero = {
    oursCold: await series('ours cold cache', 'ours', args.runs, { cold: true }),
    oursWarm: null,
    orig: await series('original', 'orig', args.runs),
  };
  clearCache();
  await warmCache();
  result.cacheFilesAfterLookup = cacheFiles();
  result.zero.oursWarm = await series('ours warm cache', 'ours', args.runs);

  await proxy(`/__bench/delay?ms=${args.delayMs}`);
  result.delayed = {
    oursCold: await series(`ours cold cache +${args.delayMs}ms`, 'ours', args.delayRuns, { cold: true }),
    oursWarm: null,
    orig: await series(`original +${args.delayMs}ms`, 'orig', args.delayRuns),
  };
  await warmCache();
  result.delayed.oursWarm = await series(`ours warm cache +${args.delayMs}ms`, 'ours', args.delayRuns);
  await proxy(`/__bench/delay?ms=0`);

  result.rssKb = {
    oursCold: await peakRss('ours', 5, { cold: true }),
    oursWarm: await (async () => (await warmCache(), peakRss('ours', 5)))(),
    orig: await peakRss('orig', 5),
  };
  log(`peak RSS KiB: ours ${result.rssKb.oursWarm.median}, original ${result.rssKb.orig.median}`);

  result.concurrent = {
    oursCold: await concurrent('ours', 20, { cold: true }),
    oursWarm: await (async () => (await warmCache(), concurrent('ours', 20)))(),
    orig: await concurrent('orig', 20),
  };
  return result;
}

/**
 * Keymaker serves an existing account only if its record of managed accounts lists it (name, UID, IAM
 * user ID), as after the accounts were made by keymaker or adopted with `install --adopt-legacy-accounts`.
 */
function recordManaged(users) {
  const lines = users.map((u) => `${u.name}:${u.uid}:${u.userId}\n`).join('');
  fs.writeFileSync('/etc/keymaker/managed-accounts', lines, { mode: 0o644 });
}

function localAccountsFor(users) {
  // 1,000 local accounts with the legacy UIDs both tools derive (uid >= 2000: "managed" for 1.x too),
  // primary group `users` (100), written straight into the files: ~1 s instead of 1,000 useradds.
  const now = Math.floor(Date.now() / 86_400_000);
  const passwd = users.map((u) => `${u.name}:x:${u.uid}:100:bench user:/home/${u.name}:/bin/bash`).join('\n');
  const shadow = users.map((u) => `${u.name}:*:${now}:0:99999:7:::`).join('\n');
  fs.appendFileSync('/etc/passwd', `${passwd}\n`);
  fs.appendFileSync('/etc/shadow', `${shadow}\n`);
  sh(['pwck', '-r', '-q']); // sanity check of what we wrote (read-only)
}

/** Linux groups vs IAM: every prefixed IAM group exists with the derived GID and exactly its IAM members. */
function verifyGroups() {
  const groups = new Map(
    fs
      .readFileSync('/etc/group', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [name, , gid, members] = line.split(':');
        return [name, { gid: Number(gid), members: members ? members.split(',').filter(Boolean) : [] }];
      }),
  );
  const problems = [];
  let memberships = 0;
  for (const g of seed.groups.filter((x) => x.prefixed)) {
    const linux = g.name.slice('keymaker_'.length);
    const local = groups.get(linux);
    if (!local) {
      problems.push(`${linux}: missing`);
      continue;
    }
    if (local.gid !== g.gid) problems.push(`${linux}: gid ${local.gid}, expected ${g.gid}`);
    const want = new Set(g.members);
    const missing = g.members.filter((m) => !local.members.includes(m));
    const extra = local.members.filter((m) => !want.has(m));
    memberships += local.members.filter((m) => want.has(m)).length;
    if (missing.length || extra.length)
      problems.push(
        `${linux}: missing [${missing.slice(0, 5).join(',')}${missing.length > 5 ? ',…' : ''}] (${missing.length}) extra [${extra.slice(0, 5).join(',')}] (${extra.length})`,
      );
  }
  return { ok: problems.length === 0, memberships, problems: problems.slice(0, 10), problemCount: problems.length };
}

let syncRun = 0;
async function syncOnce(tool, label) {
  await proxy('/__bench/reset');
  // BENCH_SYNC_NODE_FLAGS (e.g. --cpu-prof --cpu-prof-dir=/tmp/p): node flags for our sync only, to see its time.
  const nodeFlags = (process.env.BENCH_SYNC_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const argv = tool === 'ours' ? [NODE, ...nodeFlags, OURS_HOST, 'sync_groups'] : tools.orig.argv(['sync_groups']);
  const r = await run(argv, { env: tools[tool].env });
  syncRun += 1;
  fs.writeFileSync(path.join(os.tmpdir(), `keymaker-bench-sync-${tool}-${syncRun}.stderr`), r.stderr);
  const p = await proxy('/__bench/stats');
  const verify = verifyGroups();
  const notAvailable = tool === 'ours' && /unknown host command/.test(r.stderr);
  log(
    `${label}: exit ${r.code} in ${r.ms.toFixed(0)} ms, ${p.requests} requests in ${p.waves} waves, groups match IAM: ${verify.ok}${verify.ok ? '' : ` (${verify.problemCount} problems, e.g. ${verify.problems[0]})`}`,
  );
  return {
    label,
    available: !notAvailable,
    code: r.code,
    ms: r.ms,
    requests: p.requests,
    waves: p.waves,
    busyMs: p.busyMs,
    maxInFlight: p.maxInFlight,
    byAction: p.byAction,
    verify,
    stderrTail: r.stderr.slice(-1500),
  };
}

async function syncPhase(tool) {
  // The open role (no required group) for both tools: ours locks a managed account whose IAM user is outside the
  // required group (revocation) while 1.1.0's sync ignores that token, so with the required group the two syncs
  // would do different work. With the open role both create the same 50 groups and 1,000 memberships.
  const c = seed.openRole.credentials;
  writeHostConfig(c);
  Object.assign(origEnv, {
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
    AWS_SESSION_TOKEN: c.sessionToken,
  });
  await startSyslogSink();
  const users = seed.users;
  const t0 = performance.now();
  localAccountsFor(users);
  recordManaged(users);
  const result = { phase: `sync-${tool}`, localAccounts: users.length, accountsCreatedMs: performance.now() - t0 };
  result.first = await syncOnce(tool, `${tool} first sync (${users.length} local accounts)`);
  if (!result.first.available) return result;
  result.steady = [];
  for (let i = 0; i < Math.max(1, args.steadyRuns); i++)
    result.steady.push(await syncOnce(tool, `${tool} steady sync #${i + 1}`));
  result.steadyMs = stats(result.steady.map((s) => s.ms));
  // What one local step costs here (bounds the first sync): groupadd, then set 20 members in one step
  // (what ours does per group), and one usermod --append (what 1.x does per membership).
  const members = users.slice(0, 20).map((u) => u.name);
  const steps = { groupadd: [], setMembers: [], usermodAppend: [] };
  for (let i = 0; i < 5; i++) {
    const name = `benchtmp${i}`;
    steps.groupadd.push((await run(['groupadd', '--gid', String(60100 + i), name])).ms);
    steps.setMembers.push((await run(['gpasswd', '--members', members.join(','), name])).ms);
    steps.usermodAppend.push((await run(['usermod', '--append', '--groups', name, users[100 + i].name])).ms);
  }
  result.localStepMs = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, stats(v)]));
  return result;
}

// ---------------------------------------------------------------- the network model (issue 14)
// tool → delay relay (RTT/2 each way) → TLS terminator (test CA) → counting proxy → moto; see
// tools/netmodel/netmodel.cjs. Ours is installed with `keymaker install` and run as sshd runs it:
// the AuthorizedKeysCommand from `sshd -T`, as the AuthorizedKeysCommandUser, with sshd's reset
// environment plus NODE_EXTRA_CA_CERTS (the one addition the test CA needs; real IAM's CA is in Node's
// bundle). keymaker 1.1.0 runs as root (its installer sets AuthorizedKeysCommandUser root) with
// AWS_CA_BUNDLE.
async function netmodel(pathname) {
  const res = await fetch(`${args.netmodelControl}${pathname}`);
  return res.json();
}

function sshdSetting(text, name) {
  const line = text.split('\n').find((l) => l.toLowerCase().startsWith(`${name} `));
  return line?.slice(name.length + 1).trim();
}

/** sshd's %f for alice's first active key: SHA256:<unpadded base64 of the blob's digest>. */
async function fingerprintOf(keyLine) {
  const { createHash } = await import('node:crypto');
  const blob = Buffer.from(keyLine.trim().split(/\s+/)[1], 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * `keymaker install --mode MODE` against `endpoint` (the network model by default), then what `sshd -T`
 * says sshd would run: the AuthorizedKeysCommand's program and the AuthorizedKeysCommandUser.
 */
function installOurs(mode, { endpoint = args.netmodel, credentials = credentialsIni() } = {}) {
  const credentialsFile = '/root/bench-credentials';
  fs.writeFileSync(credentialsFile, credentials, { mode: 0o600 });
  const cli = path.join(REPO, 'packages/cli/dist/keymaker.js');
  const argv = [
    cli,
    'install',
    '--mode',
    mode,
    '--region',
    'us-east-1',
    '--reload',
    'none',
    '--iam-endpoint',
    endpoint,
    '--sts-endpoint',
    endpoint,
    '--credentials-file',
    credentialsFile,
  ];
  // Agent mode: install starts the agent detached with this environment (the test CA for the model).
  const env = { PATH: SSHD_PATH, ...(args.caFile ? { NODE_EXTRA_CA_CERTS: args.caFile } : {}) };
  let r = spawnSync(NODE, argv, { encoding: 'utf8', env });
  if (r.status !== 0 && /the keymaker agent did not start/.test(r.stderr)) {
    // Seen once on a loaded machine (install waits 20 s for the agent's socket): install restored everything; again.
    log(`install --mode ${mode}: the agent did not start in time; installing again`);
    r = spawnSync(NODE, argv, { encoding: 'utf8', env });
  }
  if (r.status !== 0) throw new Error(`keymaker install --mode ${mode} failed (${r.status}): ${r.stderr}`);
  // Log lines go to the sandbox's syslog listener (there is no /dev/log here).
  const config = JSON.parse(fs.readFileSync(HOST_CONFIG, 'utf8'));
  fs.writeFileSync(HOST_CONFIG, `${JSON.stringify({ ...config, syslogSocket: SYSLOG_SOCKET }, null, 2)}\n`);
  const t = sh(['/usr/sbin/sshd', '-T', '-C', 'user=alice,host=localhost,addr=127.0.0.1']);
  const command = sshdSetting(t, 'authorizedkeyscommand');
  const user = sshdSetting(t, 'authorizedkeyscommanduser');
  if (!command || !user) throw new Error(`sshd -T shows no AuthorizedKeysCommand after install:\n${t}`);
  return {
    command: command.split(/\s+/)[0],
    commandLine: command,
    user,
    config: { ...config, syslogSocket: SYSLOG_SOCKET },
  };
}

// The detached agent install starts (no systemd as PID 1 here).
const AGENT_PID_FILE = '/run/keymaker-agent.pid';
const USERDB_SOCKET = '/run/systemd/userdb/io.keymaker.agent';
// keys-cache.ts DEFAULT_ANSWER_TTL_MS: sshd's second call of a login is answered from a 5 s cache. A measured
// login must not be the previous login's second call, so agent logins are at least this far apart.
const AGENT_ANSWER_TTL_MS = 5000;

function agentPid() {
  const pid = Number(fs.readFileSync(AGENT_PID_FILE, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no agent pid in ${AGENT_PID_FILE}`);
  return pid;
}
/**
 * VmRSS and VmHWM of a process, KiB (/proc/PID/status), and what the RSS is: anonymous memory (heap, malloc,
 * stacks) vs file pages (the node binary's code and data, shared with every node process), and its threads.
 */
function memoryKb(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1]);
  return {
    rssKb: field('VmRSS'),
    hwmKb: field('VmHWM'),
    anonKb: field('RssAnon'),
    fileKb: field('RssFile'),
    threads: field('Threads'),
  };
}
/** CPU time (user + system) a process has used so far, ms (/proc/PID/stat, in clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop().split(' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function asUser(user, argv) {
  return ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--clear-groups', '--', ...argv];
}

async function netloginPhase() {
  await startSyslogSink();
  addAlice();
  // compat: install, and keep its AuthorizedKeysCommand (the same bytes, root-owned) under a name of its own:
  // agent mode, installed next, replaces the drop-in and removes the compat wrapper.
  const compat = installOurs('compat');
  recordManaged([{ ...seed.alice, name: 'alice' }]);
  const compatCommand = '/usr/local/sbin/bench-compat-authorized-keys';
  fs.copyFileSync(compat.command, compatCommand);
  fs.chmodSync(compatCommand, 0o755);
  // "warm": as after the scheduled sync ran (root writes the cache; the lookup only reads it).
  const caEnv = { NODE_EXTRA_CA_CERTS: args.caFile };
  const sync = await run([NODE, OURS_HOST, 'sync_groups'], { env: { PATH: SSHD_PATH, ...caEnv } });
  if (sync.code !== 0) log(`warming the cache with sync_groups: exit ${sync.code} ${sync.stderr.slice(0, 300)}`);
  // agent: `install --mode agent` starts the agent (detached, its environment carrying the test CA).
  const agent = seed.agentUser ? installOurs('agent') : undefined;
  // compat's stored key bodies (issue 14): on a host, her previous login's PAM session hook stored them; these
  // logins run the command without sshd, so run that hook's worker once, as root, as that login would have.
  const bodies = await run([NODE, OURS_HOST, 'store_key_bodies', 'alice'], { env: { PATH: SSHD_PATH, ...caEnv } });
  if (bodies.code !== 0) log(`storing alice's key bodies: exit ${bodies.code} ${bodies.stderr.slice(0, 300)}`);
  const fingerprint = await fingerprintOf(seed.alice.active[0]);
  const firstKey = keyId(seed.alice.active[0]);
  // sshd calls the command twice per login; the first call (with %f) is the one timed as "login command".
  const withFp = (stdout) => {
    const got = stdout
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map(keyId);
    return (
      got.length > 0 &&
      new Set(got).size === got.length &&
      got.every((k) => expectedKeys.has(k)) &&
      got.includes(firstKey)
    );
  };
  const modes = {
    // compat: a fresh process per login, the installed wrapper, as the lookup user.
    compat: {
      calls: [
        asUser(compat.user, [compatCommand, 'alice', fingerprint]),
        asUser(compat.user, [compatCommand, 'alice']),
      ],
      env: { PATH: SSHD_PATH, ...caEnv },
    },
    // keymaker 1.x's AuthorizedKeysCommand takes %u only: both calls are the same.
    orig: {
      calls: [
        [ORIG, 'get_authorized_keys', 'alice'],
        [ORIG, 'get_authorized_keys', 'alice'],
      ],
      env: {
        ...origEnv,
        AWS_ENDPOINT_URL_IAM: args.netmodel,
        AWS_ENDPOINT_URL_STS: args.netmodel,
        AWS_CA_BUNDLE: args.caFile,
      },
    },
  };
  if (agent) {
    // agent: the keys client sshd runs (curl on the agent's socket), as the AuthorizedKeysCommandUser, with
    // sshd's reset environment and nothing else. The agent serves only names with no local account, so it
    // logs in u0002, an IAM-only user with alice's key set (same bodies, same statuses).
    const name = seed.agentUser.name;
    let last = -Infinity;
    modes.agent = {
      calls: [asUser(agent.user, [agent.command, name, fingerprint]), asUser(agent.user, [agent.command, name])],
      env: { PATH: SSHD_PATH },
      before: async () => {
        const wait = last + AGENT_ANSWER_TTL_MS + 300 - performance.now();
        if (wait > 0) await sleep(wait);
      },
      after: () => {
        last = performance.now();
      },
    };
  }

  const netCounters = {
    reset: () => netmodel('/reset'),
    read: async () => {
      const { connections, clientHellos, fullHandshakes, resumedSessions } = await netmodel('/stats');
      return { connections, clientHellos, fullHandshakes, resumedSessions };
    },
  };
  /** One login: sshd's two calls, counters read after each (the proxy's and the model's add up from the reset). */
  const once = async (mode) => {
    const m = modes[mode];
    await m.before?.();
    await proxy('/__bench/reset');
    await netCounters.reset();
    const first = await run(m.calls[0], { env: m.env });
    const p1 = await proxy('/__bench/stats');
    const n1 = await netCounters.read();
    const second = await run(m.calls[1], { env: m.env });
    const p2 = await proxy('/__bench/stats');
    const n2 = await netCounters.read();
    m.after?.();
    return {
      ms: first.ms,
      secondMs: second.ms,
      code: first.code || second.code,
      ok: withFp(first.stdout) && keysOk(second.stdout),
      stderr: (first.stderr + second.stderr).slice(0, 400),
      requests: p1.requests,
      waves: p1.waves,
      busyMs: p1.busyMs,
      maxInFlight: Math.max(p1.maxInFlight, p2.maxInFlight),
      byAction: p1.byAction,
      outsideIamMs: first.ms - p1.busyMs,
      ...n1,
      both: { requests: p2.requests, waves: p2.waves, byAction: p2.byAction, ...n2 },
    };
  };
  const result = {
    phase: 'netlogin',
    installed: { command: compat.command, user: compat.user },
    agent: agent ? { command: agent.commandLine, user: agent.user, loginUser: seed.agentUser.name } : undefined,
    fingerprint,
    rtts: {},
  };
  const names = Object.keys(modes).filter((m) => m !== 'orig');
  const order0 = Object.keys(modes);
  for (const rtt of String(args.rtts).split(',').map(Number)) {
    await netmodel(`/rtt?ms=${rtt}`);
    for (const mode of order0) await once(mode); // warm-up login: page cache, connections, the agent's caches
    const runs = Object.fromEntries(order0.map((m) => [m, []]));
    for (let i = 0; i < args.netRuns; i++) {
      // Interleaved, the order alternating each round, so drift on a loaded machine hits all.
      const order = i % 2 ? [...order0].reverse() : order0;
      for (const mode of order) runs[mode].push(await once(mode));
    }
    const perMode = {};
    for (const [mode, rs] of Object.entries(runs)) {
      const both = (key) => stats(rs.map((r) => r.both[key]));
      perMode[mode] = {
        ...summarise(rs),
        secondMs: stats(rs.map((r) => r.secondMs)),
        connections: stats(rs.map((r) => r.connections)),
        clientHellos: stats(rs.map((r) => r.clientHellos)),
        fullHandshakes: stats(rs.map((r) => r.fullHandshakes)),
        resumedSessions: stats(rs.map((r) => r.resumedSessions)),
        both: {
          requests: both('requests'),
          waves: both('waves'),
          connections: both('connections'),
          clientHellos: both('clientHellos'),
          byAction: rs[0]?.both.byAction,
        },
      };
      if (mode !== 'orig') perMode[mode].roundRatio = stats(rs.map((r, i) => r.ms / runs.orig[i].ms));
      log(
        `RTT ${rtt} ms, ${mode}: median ${perMode[mode].wallMs.median?.toFixed(0)} ms, p95 ${perMode[mode].wallMs.p95?.toFixed(0)} ms, ${perMode[mode].requests.median} requests (${perMode[mode].both.requests.median} with the second call), ${perMode[mode].connections.median} TCP, ${perMode[mode].clientHellos.median} TLS handshakes, ok=${perMode[mode].allOk}${perMode[mode].allOk ? '' : ` ${JSON.stringify(perMode[mode].failures)}`}`,
      );
    }
    result.rtts[rtt] = { modes: names, ...perMode };
  }
  await netmodel('/rtt?ms=0');
  if (agent) result.agent.memoryAfterRounds = memoryKb(agentPid());
  return result;
}

// ---------------------------------------------------------------- the agent: NSS and memory (issues 11, 14)
/** One Varlink call (NUL-terminated JSON, libnss-systemd's protocol) on the agent's userdb socket. */
function varlink(method, parameters, socket = USERDB_SOCKET) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socket);
    const chunks = [];
    c.setTimeout(10_000, () => c.destroy(new Error(`${method}: no answer in 10 s`)));
    c.on('connect', () => c.write(`${JSON.stringify({ method, parameters })}\0`));
    c.on('data', (d) => {
      chunks.push(d);
      const b = Buffer.concat(chunks);
      const end = b.indexOf(0);
      if (end < 0) return;
      c.destroy();
      resolve(JSON.parse(b.subarray(0, end).toString('utf8')));
    });
    c.on('error', reject);
  });
}

/** A user record, asking again while the agent says its first resolution is still running (as NSS callers do). */
async function resolveUser(userName) {
  for (let i = 0; ; i++) {
    const reply = await varlink('io.systemd.UserDatabase.GetUserRecord', { userName, service: 'io.keymaker.agent' });
    if (reply.error !== 'io.systemd.UserDatabase.ServiceNotAvailable' || i >= 20) return reply;
    await sleep(200);
  }
}

/**
 * The agent as installed (`install --mode agent`, nsswitch `passwd: files systemd`, the real libnss-systemd),
 * straight on the counting proxy with the open role (no required group): `getent passwd` of a user the agent
 * serves vs a files user, interleaved; then the agent's memory with every seeded user resolved.
 */
async function agentNssPhase() {
  await startSyslogSink();
  const c = seed.openRole.credentials;
  const installed = installOurs('agent', {
    endpoint: args.proxy,
    credentials: `[default]\naws_access_key_id = ${c.accessKeyId}\naws_secret_access_key = ${c.secretAccessKey}\naws_session_token = ${c.sessionToken}\n`,
  });
  sh(['useradd', '--no-create-home', '--gid', 'users', '--shell', '/bin/bash', 'benchlocal']);
  const nsswitch = fs.readFileSync('/etc/nsswitch.conf', 'utf8');
  const result = {
    phase: 'agent-nss',
    nsswitchPasswd: /^passwd:.*$/m.exec(nsswitch)?.[0],
    nssSystemd: spawnSync('sh', ['-c', 'ls /lib/*/libnss_systemd.so.2 /usr/lib/*/libnss_systemd.so.2 2>/dev/null'], {
      encoding: 'utf8',
    }).stdout.trim(),
    keysCommand: installed.commandLine,
  };
  const pid = agentPid();
  result.memoryStarted = memoryKb(pid);
  const served = seed.users.find((u) => u.name === 'u0500')?.name ?? seed.agentUser.name;
  const getent = (name) => run(['getent', 'passwd', name], { env: { PATH: SSHD_PATH } });
  // Warm: the first resolution may answer "not found" within the agent's deadline and finish in the background.
  let warm;
  for (let i = 0; i < 20; i++) {
    warm = await getent(served);
    if (warm.code === 0) break;
    await sleep(250);
  }
  result.servedUser = { name: served, line: warm.stdout.trim(), code: warm.code };
  result.filesUser = { name: 'benchlocal', line: (await getent('benchlocal')).stdout.trim() };
  for (let i = 0; i < 3; i++) for (const name of [served, 'benchlocal']) await getent(name);
  const agentRuns = [];
  const filesRuns = [];
  for (let i = 0; i < args.runs; i++) {
    const order = i % 2 ? ['files', 'agent'] : ['agent', 'files'];
    for (const which of order) {
      const r = await getent(which === 'agent' ? served : 'benchlocal');
      (which === 'agent' ? agentRuns : filesRuns).push({ ms: r.ms, ok: r.code === 0 });
    }
  }
  result.getent = {
    runs: args.runs,
    agent: stats(agentRuns.map((r) => r.ms)),
    files: stats(filesRuns.map((r) => r.ms)),
    roundRatio: stats(agentRuns.map((r, i) => r.ms / filesRuns[i].ms)),
    allOk: agentRuns.every((r) => r.ok) && filesRuns.every((r) => r.ok),
  };
  log(
    `getent passwd: agent ${result.getent.agent.median?.toFixed(1)} ms, files ${result.getent.files.median?.toFixed(1)} ms, ratio ${result.getent.roundRatio.median?.toFixed(2)}, ok=${result.getent.allOk}`,
  );
  result.memoryInstalledAfterGetent = memoryKb(pid);

  // Memory with every seeded user resolved. The agent admits 20 new names at once, then 12 per minute (its
  // flood guard, iam-identity-source.ts), so 1,000 resolutions would take 80 min: this runs the same bundle,
  // same command line, with that one constant (globalBurst) raised, replacing the installed agent.
  const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const bundleAt = cmdline.findIndex((a) => a.endsWith('keymaker-host.mjs') || a.endsWith('keymaker-host.js'));
  const bundle = fs.readFileSync(cmdline[bundleAt], 'utf8');
  const pattern = /globalBurst:\s*20,/g;
  const matches = bundle.match(pattern)?.length ?? 0;
  result.memory = { users: seed.users.length, floodGuardPatch: matches === 1 ? 'globalBurst 20 -> 100000' : undefined };
  if (matches !== 1) {
    result.memory.unavailable = `the bundle has ${matches} matches of ${pattern} (expected 1): flood guard not raised`;
    return result;
  }
  // Same file name in a root-owned directory of its own (the entry runs only as keymaker-host.mjs).
  const openedDir = '/usr/local/lib/keymaker-bench-open-flood';
  fs.mkdirSync(openedDir, { recursive: true, mode: 0o755 });
  const opened = path.join(openedDir, path.basename(cmdline[bundleAt]));
  fs.writeFileSync(opened, bundle.replace(pattern, 'globalBurst:100000,'), { mode: 0o644 });
  process.kill(pid, 'SIGTERM');
  // Gone or a zombie (PID 1 of the sandbox reaps it when it gets to it).
  const alive = (p) => {
    try {
      return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  // BENCH_AGENT_NODE_FLAGS (e.g. --trace-gc): node flags for this agent only, to see what its memory is.
  const nodeFlags = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  result.memory.nodeFlags = nodeFlags;
  // After the installed flags, so that they can be overridden (V8: the last of --x / --no-x wins).
  const argv = [cmdline[0], ...cmdline.slice(1, bundleAt), ...nodeFlags, opened, ...cmdline.slice(bundleAt + 1)];
  const agentLog = fs.openSync('/run/bench-agent-open.log', 'a');
  // BENCH_AGENT_ENV ("NAME=value ...", e.g. MALLOC_ARENA_MAX=2): environment for this agent only, beside sshd's PATH.
  const extraEnv = (process.env.BENCH_AGENT_ENV ?? '').split(/\s+/).filter((kv) => /^[A-Z_][A-Z0-9_]*=/.test(kv));
  const agentEnv = { PATH: SSHD_PATH };
  for (const kv of extraEnv) agentEnv[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  result.memory.env = Object.entries(agentEnv)
    .filter(([k]) => k !== 'PATH')
    .map(([k, v]) => `${k}=${v}`);
  const child = spawn(argv[0], argv.slice(1), {
    detached: true,
    // stdout too: --trace-gc writes there.
    stdio: ['ignore', agentLog, agentLog],
    env: agentEnv,
  });
  child.unref();
  const statusOk = async () =>
    (
      await run([
        'curl',
        '-q',
        '-s',
        '--fail',
        '--max-time',
        '1',
        '--unix-socket',
        '/run/keymaker/keys.sock',
        'http://localhost/status',
      ])
    ).code === 0;
  for (let i = 0; i < 100 && alive(child.pid) && !(await statusOk()); i++) await sleep(200);
  if (!(await statusOk())) {
    const tail = fs.readFileSync('/run/bench-agent-open.log', 'utf8').trim().split('\n').slice(-3).join(' | ');
    result.memory.unavailable = `the agent with the flood guard raised did not start: ${tail || 'no output'}`;
    log(result.memory.unavailable);
    return result;
  }
  result.memory.started = memoryKb(child.pid);
  await proxy('/__bench/reset');
  const cpu0 = cpuMs(child.pid);
  const t0 = performance.now();
  const replies = await mapLimit(
    seed.users.map((u) => u.name),
    8,
    (name) => resolveUser(name).catch((e) => ({ error: String(e) })),
  );
  result.memory.resolveMs = performance.now() - t0;
  result.memory.resolveCpuMs = cpuMs(child.pid) - cpu0;
  const p = await proxy('/__bench/stats');
  result.memory.resolved = replies.filter((r) => r.parameters?.record).length;
  result.memory.refused = Object.entries(
    replies
      .filter((r) => !r.parameters?.record)
      .reduce((acc, r) => ({ ...acc, [r.error]: (acc[r.error] ?? 0) + 1 }), {}),
  );
  const missing = seed.users.filter((u, i) => !replies[i].parameters?.record).map((u) => u.name);
  const syslogLines = fs.existsSync('/run/bench-syslog.log')
    ? fs.readFileSync('/run/bench-syslog.log', 'utf8').split('\n')
    : [];
  result.memory.notResolved = missing
    .slice(0, 5)
    .map((name) => syslogLines.findLast((l) => l.includes(`refused ${name}:`))?.replace(/^.*?agent: /, '') ?? name);
  result.memory.requests = p.requests;
  result.memory.byAction = p.byAction;
  await sleep(1000);
  result.memory.after = memoryKb(child.pid);
  const status = await run(['curl', '-q', '-s', '--unix-socket', '/run/keymaker/keys.sock', 'http://localhost/status']);
  try {
    result.memory.caches = JSON.parse(status.stdout).caches;
  } catch {
    result.memory.caches = undefined;
  }
  log(
    `agent memory: ${result.memory.resolved}/${seed.users.length} resolved in ${result.memory.resolveMs.toFixed(0)} ms (${p.requests} IAM requests), VmRSS ${(result.memory.after.rssKb / 1024).toFixed(1)} MiB (started ${(result.memory.started.rssKb / 1024).toFixed(1)} MiB)`,
  );
  // With --trace-gc: the last full collections (live heap after a mark-compact).
  result.memory.majorGcs = fs
    .readFileSync('/run/bench-agent-open.log', 'utf8')
    .split('\n')
    .filter((l) => /Mark-Compact/.test(l))
    .slice(-3);
  child.kill('SIGTERM');
  return result;
}

let result;
if (args.phase === 'lookup') result = await lookupPhase();
else if (args.phase === 'sync-ours') result = await syncPhase('ours');
else if (args.phase === 'sync-orig') result = await syncPhase('orig');
else if (args.phase === 'netlogin') result = await netloginPhase();
else if (args.phase === 'agent-nss') result = await agentNssPhase();
else throw new Error(`unknown phase ${args.phase}`);
fs.writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
