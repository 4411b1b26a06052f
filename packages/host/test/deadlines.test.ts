// Issue 13 point 5: every wait is bounded and cancels. Real processes on purpose (sleep, logger,
// a stalled syslog socket): what must be shown is that the child is gone and the wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createDeadline } from '@keymaker/core';
import { flushHostCommandSyslog, getAuthorizedKeysCommand, hostCommandSyslog } from '../src/commands/host-commands';
import { DEFAULT_HOST_CONFIG } from '../src/config/host-config';
import { ShadowUtilsAdmin } from '../src/accounts/local-accounts';
import { realRuntimeSystem, runProcess, withAbortSignal, type RuntimeSystem } from '../src/system/runtime-system';
import { systemdService } from '../src/install/templates';
import { DEFAULT_PATHS } from '../src/system/paths';
import { createLoggerSyslog } from '../src/system/syslog';
import type { StatPath } from '../src/system/root-owned';

jest.setTimeout(30_000);

// Each wait here would otherwise last a minute or forever (sleep 60, a hung IAM, a full socket): a bound of the
// deadline plus 10 s proves the wait is bounded without turning a loaded CI machine into a failure.
const SLACK_MS = 10_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'km-deadlines-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A unix datagram socket nobody reads, its queue filled: every further send blocks (a stalled /dev/log). */
async function stalledSyslogSocket(): Promise<{ socket: string; stop: () => void }> {
  const socket = path.join(dir, `log-${Math.random().toString(36).slice(2)}.sock`);
  const script = [
    'import socket, sys, time',
    'r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r.bind(sys.argv[1])',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect(sys.argv[1]); s.setblocking(False)',
    'try:',
    '    while True: s.send(b"x" * 512)',
    'except BlockingIOError:',
    '    pass',
    'print("ready", flush=True)',
    'time.sleep(120)',
  ].join('\n');
  const child: ChildProcess = spawn('python3', ['-c', script, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`stalled socket helper exited ${code}`)));
  });
  return { socket, stop: () => child.kill('SIGKILL') };
}

describe('RuntimeSystem.run under a deadline', () => {
  it('kills a child still running when the signal fires, and the pid is gone once run() settles', async () => {
    const deadline = createDeadline(300);
    let pid: number | undefined;
    const started = Date.now();
    const run = realRuntimeSystem.run(['sh', '-c', 'echo $$; exec sleep 60'], {
      signal: deadline.signal,
      onSpawn: (p) => (pid = p),
    });
    await expect(run).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(300 + SLACK_MS);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid!)).toBe(false);
  });

  it('escalates to SIGKILL for a child that ignores SIGTERM', async () => {
    const deadline = createDeadline(200);
    let pid: number | undefined;
    const started = Date.now();
    const run = runProcess(['sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"], {
      signal: deadline.signal,
      onSpawn: (p) => (pid = p),
      killGraceMs: 300,
    });
    await expect(run).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(200 + 300 + SLACK_MS);
    expect(alive(pid!)).toBe(false);
  });

  it('does not start a command once the deadline has passed', async () => {
    const deadline = createDeadline(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    let spawned = false;
    await expect(
      runProcess(['true'], { signal: deadline.signal, onSpawn: () => (spawned = true) }),
    ).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(spawned).toBe(false);
  });
});

describe('account creation under a deadline (issue 10 point 4)', () => {
  it('a useradd still running when the deadline fires is killed, and gone before addUser rejects', async () => {
    // A stand-in useradd that never finishes: the real useradd would change this machine's /etc/passwd.
    const fake = path.join(dir, 'useradd');
    fs.writeFileSync(fake, '#!/bin/sh\necho "$@" > "$0.args"\nexec sleep 60\n', { mode: 0o755 });
    const deadline = createDeadline(300);
    let pid: number | undefined;
    // The fault comes through the system interface: ShadowUtilsAdmin's own argv, run by the real runProcess.
    const sys: RuntimeSystem = withAbortSignal(
      {
        run: (argv, options) =>
          runProcess(argv[0] === 'useradd' ? [fake, ...argv.slice(1)] : argv, {
            ...options,
            onSpawn: (p) => (pid = p),
          }),
        readFile: (p) => realRuntimeSystem.readFile(p),
      },
      deadline.signal,
    );
    const started = Date.now();
    const added = new ShadowUtilsAdmin(sys).addUser({
      name: 'bob',
      uid: 1879048193,
      gid: 1879048193,
      privateGroup: 'create',
      groups: [],
      comment: 'IAM user bob',
    });
    await expect(added).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(300 + SLACK_MS);
    // It really was useradd's command line that ran, and that process is gone.
    expect(fs.readFileSync(`${fake}.args`, 'utf8')).toMatch(/--uid 1879048193 .*-- bob$/m);
    expect(alive(pid!)).toBe(false);
  });
});

describe('syslog', () => {
  it('a stalled socket: flush is bounded, the loggers are killed and the messages counted as dropped', async () => {
    const stalled = await stalledSyslogSocket();
    try {
      const syslog = createLoggerSyslog({ socket: stalled.socket });
      for (let i = 0; i < 5; i++) syslog.log('info', `message ${i}`);
      const started = Date.now();
      await syslog.flush(400);
      expect(Date.now() - started).toBeLessThan(400 + SLACK_MS);
      expect(syslog.dropped()).toBe(5);
    } finally {
      stalled.stop();
    }
  });
});

describe('the lookup under its deadline', () => {
  let hang: net.Server;
  const sockets = new Set<net.Socket>();
  let endpoint: string;
  beforeAll(async () => {
    // Accepts the connection and the request, never answers.
    hang = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(hang.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => hang.close(resolve));
  });

  it('a hanging IAM and a stalled syslog: nothing printed, a refusal, and back within the deadline', async () => {
    const stalled = await stalledSyslogSocket();
    try {
      const credentials = path.join(dir, 'credentials');
      fs.writeFileSync(credentials, '[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n');
      const configFile = path.join(dir, 'config.json');
      const deadlineMs = 1500;
      const config = {
        ...DEFAULT_HOST_CONFIG,
        region: 'us-east-1',
        iamEndpoint: endpoint,
        stsEndpoint: endpoint,
        sharedCredentialsFile: credentials,
        metadataEndpoint: 'http://127.0.0.1:9',
        deadlineMs,
        syslogSocket: stalled.socket,
      };
      fs.writeFileSync(configFile, JSON.stringify(config));
      const trusted: StatPath = async (p) => ({
        isFile: p === configFile || p === credentials,
        isDirectory: !(p === configFile || p === credentials),
        isSymlink: false,
        uid: 0,
        mode: 0o644,
      });
      let stdout = '';
      const started = Date.now();
      // The entry's run: the command, then the flush of the syslog writer it was given (host-entry.ts).
      const syslog = hostCommandSyslog();
      const { exitCode } = await getAuthorizedKeysCommand(['alice', 'SHA256:x'], {
        syslog,
        paths: { ...DEFAULT_PATHS, configFile, cacheDir: path.join(dir, 'cache') },
        statPath: trusted,
        stdout: (text) => (stdout += text),
        stderr: () => undefined,
        accounts: {
          user: async () => undefined,
          userByUid: async () => undefined,
          group: async () => undefined,
          groupByGid: async () => undefined,
          users: async () => [],
          groups: async () => [],
        },
      });
      await flushHostCommandSyslog(syslog, () => undefined);
      const ms = Date.now() - started;
      expect(stdout).toBe('');
      expect(exitCode).not.toBe(0);
      expect(ms).toBeLessThan(deadlineMs + SLACK_MS);
    } finally {
      stalled.stop();
    }
  });
});

describe('systemd units', () => {
  it('the sync service has a start timeout, so a stuck run is killed by systemd too', () => {
    expect(systemdService(DEFAULT_PATHS)).toMatch(/^TimeoutStartSec=\d+$/m);
  });
});
