/*
 * Agent mode without systemd as PID 1: what stands in for the .socket units (agent-units.ts). The agent runs as
 * the unprivileged `keymaker` user, but its userdb socket goes in the root-owned /run/systemd/userdb, so root
 * makes both sockets, as systemd would, and hands them over:
 *
 *   - a small Node script (LAUNCHER_SCRIPT), run as root with the agent's own node, binds the userdb and keys
 *     sockets with the owner, group and mode the .socket units give them (each made under a temporary name and
 *     renamed into place, so it never exists with a wider mode, and a stale one is replaced atomically);
 *   - it starts the agent in a session of its own with the sockets at fd 3 and 4, through setpriv: the
 *     `keymaker` uid and gid, no supplementary groups, no_new_privs, CAP_KILL alone in the bounding, inheritable
 *     and ambient sets (the unit's CapabilityBoundingSet= and AmbientCapabilities=), and a fixed environment;
 *   - sh sets LISTEN_PID to its own pid before exec'ing node (the same process), LISTEN_FDS=2 and
 *     LISTEN_FDNAMES=userdb:keys, so the agent takes the sockets exactly as under systemd (listen-fds.ts);
 *   - once that process is node, the script writes the pid file and exits; the agent is not its child then.
 *
 * The unit's namespace sandboxing (ProtectSystem=, PrivateTmp=, PrivateDevices=, ...) has no equivalent here.
 */
import { InputError } from '@keymaker/core';
import { KEYS_FD_NAME, USERDB_FD_NAME } from './agent-units';

/** One listening socket the launcher makes, as a .socket unit would. */
export interface LaunchSocket {
  path: string;
  mode: number;
  uid: number;
  gid: number;
}

/** What the launcher script reads on stdin (JSON). */
export interface AgentLaunchSpec {
  /** In fd order from 3: userdb, then keys (LISTEN_FDNAMES). */
  sockets: LaunchSocket[];
  /** setpriv ... sh -c ... node ... (agentLaunchArgv). */
  argv: string[];
  env: Record<string, string>;
  /** The executable the process must be running (after setpriv and sh exec'd) before it counts as started. */
  exe: string;
  pidFile: string;
  logFile: string;
}

/** systemd's default PATH for services. */
const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin';

/** The names the agent looks up, in the order the launcher passes the sockets. */
export const LAUNCH_FD_NAMES = [USERDB_FD_NAME, KEYS_FD_NAME] as const;

/**
 * Sets what systemd sets for a socket-activated service, then becomes the agent: `$$` is sh's pid, which the exec
 * keeps, so LISTEN_PID names the agent itself. umask 022 is systemd's default UMask=.
 */
const EXEC_WITH_LISTEN_FDS = `umask 022; export LISTEN_PID=$$ LISTEN_FDS=${LAUNCH_FD_NAMES.length} LISTEN_FDNAMES=${LAUNCH_FD_NAMES.join(':')}; exec "$@"`;

/** The capability the agent keeps: ending a revoked user's processes (end-sessions.ts). */
const AGENT_CAPS = '-all,+kill';

export interface AgentLaunchOptions {
  /** Absolute path of setpriv (util-linux >= 2.31, for --ambient-caps). */
  setpriv: string;
  uid: number;
  gid: number;
  /** node, its flags, the host bundle, `agent --config PATH`. */
  command: string[];
}

/** The argv the launcher starts: setpriv drops to uid:gid keeping CAP_KILL, sh sets LISTEN_*, node runs. */
export function agentLaunchArgv(o: AgentLaunchOptions): string[] {
  if (!o.setpriv.startsWith('/'))
    throw new InputError('INVALID_ARGUMENT', `setpriv must be an absolute path: ${JSON.stringify(o.setpriv)}`);
  // Never root: the whole point is that the agent is not.
  for (const [label, id] of [
    ['uid', o.uid],
    ['gid', o.gid],
  ] as const)
    if (!Number.isInteger(id) || id <= 0 || id >= 0xffffffff)
      throw new InputError('INVALID_ARGUMENT', `the agent's ${label} must be a non-root id: ${id}`);
  if (o.command.length === 0 || !o.command[0]!.startsWith('/'))
    throw new InputError('INVALID_ARGUMENT', 'the agent command must start with an absolute path');
  return [
    o.setpriv,
    `--reuid=${o.uid}`,
    `--regid=${o.gid}`,
    '--clear-groups',
    '--no-new-privs',
    `--bounding-set=${AGENT_CAPS}`,
    `--inh-caps=${AGENT_CAPS}`,
    `--ambient-caps=${AGENT_CAPS}`,
    '--',
    '/bin/sh',
    '-c',
    EXEC_WITH_LISTEN_FDS,
    'keymaker-agent',
    ...o.command,
  ];
}

/**
 * The agent's whole environment, like a unit's: nothing from the shell that ran install but NODE_EXTRA_CA_CERTS,
 * the one setting a host behind a TLS-inspecting proxy (or a test CA) needs to reach IAM at all, kept when it is an
 * absolute path. The bypass keeps NSS in setpriv (which asks getpwnam even for a numeric uid) and in the agent
 * from asking the agent's own socket, which nobody answers yet.
 */
export function agentLaunchEnv(userdbServiceName: string, installEnv: NodeJS.ProcessEnv = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: SERVICE_PATH, SYSTEMD_BYPASS_USERDB: userdbServiceName };
  const ca = installEnv.NODE_EXTRA_CA_CERTS;
  // eslint-disable-next-line no-control-regex
  if (ca !== undefined && ca.startsWith('/') && !/[\x00-\x1f\x7f]/.test(ca)) env.NODE_EXTRA_CA_CERTS = ca;
  return env;
}

/** How long the launcher waits for the exec chain to reach node. */
const EXEC_WAIT_MS = 10_000;

/**
 * Run as root: `node -e LAUNCHER_SCRIPT` with an AgentLaunchSpec on stdin. Exit 0 once the agent runs; else
 * 1 and one line on stderr saying why (what it bound by then is left for the caller to remove).
 */
export const LAUNCHER_SCRIPT = `
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const fail = (message) => {
  process.stderr.write(message + '\\n');
  process.exit(1);
};
const spec = JSON.parse(fs.readFileSync(0, 'utf8'));

function lstat(p) {
  try { return fs.lstatSync(p); } catch (e) { if (e.code === 'ENOENT') return undefined; throw e; }
}
function answers(p) {
  return new Promise((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}
async function bind(s) {
  const st = lstat(s.path);
  if (st && !st.isSocket()) fail(s.path + ' exists and is not a socket');
  if (st && (await answers(s.path))) fail(s.path + ': another service is listening there');
  const temp = path.join(path.dirname(s.path), '.' + path.basename(s.path) + '.' + process.pid);
  fs.rmSync(temp, { force: true });
  const server = net.createServer();
  const umask = process.umask(0o177);
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(temp, resolve);
    });
  } catch (e) {
    fail('cannot listen on ' + temp + ': ' + e.message);
  } finally {
    process.umask(umask);
  }
  fs.chownSync(temp, s.uid, s.gid);
  fs.chmodSync(temp, s.mode);
  fs.renameSync(temp, s.path);
  const fd = server._handle && server._handle.fd;
  if (!Number.isInteger(fd) || fd < 0) fail('no file descriptor for ' + s.path);
  return fd;
}
function exeOf(pid) {
  try { return fs.readlinkSync('/proc/' + pid + '/exe'); } catch { return undefined; }
}
function writePid(pid) {
  const temp = spec.pidFile + '.' + process.pid;
  fs.writeFileSync(temp, pid + '\\n', { mode: 0o644 });
  fs.renameSync(temp, spec.pidFile);
}

(async () => {
  const fds = [];
  for (const s of spec.sockets) fds.push(await bind(s));
  const log = fs.openSync(spec.logFile, 'a', 0o600);
  const child = spawn(spec.argv[0], spec.argv.slice(1), {
    cwd: '/',
    env: spec.env,
    detached: true,
    stdio: ['ignore', log, log, ...fds],
  });
  child.once('error', (e) => fail('cannot run ' + spec.argv[0] + ': ' + e.message));
  child.once('exit', (code, signal) =>
    fail('the agent exited at once (' + (signal || 'exit ' + code) + '); see ' + spec.logFile),
  );
  if (child.pid === undefined) return;
  const want = fs.realpathSync(spec.exe);
  const started = Date.now();
  const poll = () => {
    if (exeOf(child.pid) === want) {
      writePid(child.pid);
      process.exit(0);
    }
    if (Date.now() - started > ${EXEC_WAIT_MS}) {
      try { process.kill(child.pid, 'SIGKILL'); } catch {}
      fail(spec.argv[0] + ' did not exec ' + want + ' within ${EXEC_WAIT_MS / 1000} s');
    }
    setTimeout(poll, 10);
  };
  poll();
})().catch((e) => fail(e.message));
`;
