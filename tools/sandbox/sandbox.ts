// Throw-away Linux sandbox for end-to-end tests with a real sshd: own mount + pid namespace,
// overlayfs over /etc /usr/local /var /opt /root (and /usr with overlayUsr), tmpfs over /home and /run, HOST network (so a
// moto server on the host's 127.0.0.1 is reachable; each sshd gets its own 127.0.0.1 port).
// The test process stays outside and runs commands inside with nsenter. See README.md.
//
//   let sb: Sandbox;
//   beforeAll(async () => { sb = await createSandbox(); });
//   afterAll(async () => { await sb?.destroy(); });   // always runs, safe twice
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ExecOptions {
  /** Written to the command's stdin (otherwise stdin is /dev/null). */
  input?: string | Buffer;
  /** Extra environment. The host's environment is NOT passed in: the command gets
   *  PATH, HOME=/root, LANG=C.UTF-8 and these. */
  env?: Record<string, string>;
  /** Kill the command (its whole process group) and reject after this long. Default 30 s. */
  timeoutMs?: number;
  /** Working directory inside the sandbox. Default "/". */
  cwd?: string;
}

export interface ExecResult {
  /** Exit status; 128+N when killed by signal N. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartSshdOptions {
  /** 127.0.0.1 port; default: a free one picked at random (retried if the bind races). */
  port?: number;
  /** sshd config file inside the sandbox (default /etc/ssh/sshd_config, which includes sshd_config.d/*.conf). */
  configFile?: string;
  /** e.g. 'VERBOSE' or 'DEBUG1' (passed as -o LogLevel=...). */
  logLevel?: string;
  /** Extra sshd arguments, e.g. ['-o', 'KbdInteractiveAuthentication=yes']. Command-line -o wins over the config. */
  extraArgs?: string[];
  /** Give up waiting for "Server listening" after this long. Default 10 s. */
  timeoutMs?: number;
}

export interface SshOptions {
  /** Private key file (mode 600). A host path, or a sandbox path when inside=true. */
  identityFile: string;
  /** Default: the port of the sandbox's running sshd. */
  port?: number;
  /** Remote command; a string is passed to the remote shell as is. Default 'true'. */
  command?: string | string[];
  /** BatchMode=yes (then the client never tries keyboard-interactive). Default false. */
  batch?: boolean;
  /** Run the ssh client inside the sandbox instead of on the host. Default false (same network anyway). */
  inside?: boolean;
  /** Extra client arguments placed before the destination, e.g. ['-o', 'LogLevel=DEBUG1']. */
  extraArgs?: string[];
  timeoutMs?: number;
}

export interface UpperDirChange {
  /** Path as seen inside the sandbox, e.g. '/etc/passwd'. */
  path: string;
  /** 'deleted' = overlay whiteout (file removed from the lower/host dir). */
  type: 'file' | 'dir' | 'symlink' | 'deleted' | 'other';
}

export interface Sandbox {
  /** Host pid of the sandbox's PID 1 (nsenter target). */
  readonly pid: number;
  /** Host path of a sandbox path through /proc/PID/root (read-only peeking from the host works). */
  hostPath(p: string): string;
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec but rejects (with stdout/stderr in the message) unless the exit code is 0. */
  execOk(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Creates parent dirs (root, 755) as needed. mode default 0o644, owner default 'root:root'. */
  writeFile(p: string, content: string | Buffer, mode?: number, owner?: string): Promise<void>;
  readFile(p: string): Promise<string>;
  exists(p: string): Promise<boolean>;
  startSshd(opts?: StartSshdOptions): Promise<{ port: number }>;
  /** SIGHUP the sshd and wait until it listens again (rejects with the log if it died, e.g. bad config). */
  reloadSshd(timeoutMs?: number): Promise<void>;
  stopSshd(): Promise<void>;
  /** Everything sshd wrote to stderr so far (it runs with -e). */
  sshdLog(): string;
  ssh(user: string, opts: SshOptions): Promise<ExecResult>;
  /** Files written/deleted under the overlaid dirs, plus everything under /home. Sorted by path. */
  upperDirChanges(): Promise<UpperDirChange[]>;
  /** Kill everything in the sandbox and remove the temp dir. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface CreateSandboxOptions {
  /** Parent of the per-run temp dir. Default os.tmpdir(). */
  tmpRoot?: string;
  /** Give up if the sandbox is not ready after this long. Default 10 s. */
  timeoutMs?: number;
  /**
   * 'private': a network namespace of its own, loopback only (servers on fixed ports such as rpcbind's 111 do
   * not meet the host's or another sandbox's); sshd, exec and ssh with inside=true run in it. Default 'host'.
   */
  network?: 'host' | 'private';
  /**
   * Also an overlay over /usr (mounted under the /usr/local one), so a test can remove and install Debian
   * packages: dpkg writes /usr, /etc and its state in /var/lib/dpkg, all overlaid then. Default false: /usr is
   * the machine's, read-only in effect. Copies of changed files live in the scratch tmpfs (memory).
   */
  overlayUsr?: boolean;
}

const INIT = path.join(__dirname, 'init.sh');
const SSHD = '/usr/sbin/sshd';
const OVERLAID = ['/etc', '/usr/local', '/var', '/opt', '/root'];
const BASE_ENV = {
  // /run/keymaker-sandbox/bin holds the caller's node (init.sh).
  PATH: '/run/keymaker-sandbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
};

const live = new Map<ChildProcess, string>(); // unshare process -> its temp dir
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test forgot destroy(): the init also exits when its stdin closes.
  process.on('exit', () => {
    for (const [c, dir] of live) {
      try {
        c.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        /* gone */
      }
    }
  });
}

let supportCache: { ok: boolean; reason?: string } | undefined;

/** Whether this machine can run sandboxes (Linux, root, unshare/nsenter, overlayfs, sshd, ssh). Cached. */
export function sandboxSupport(): { ok: boolean; reason?: string } {
  if (supportCache) return supportCache;
  supportCache = checkSupport();
  return supportCache;
}

function checkSupport(): { ok: boolean; reason?: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux, this is ${process.platform}` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (unshare --mount/--pid, overlayfs, useradd)' };
  for (const tool of ['unshare', 'nsenter', 'ssh', 'ssh-keygen', 'setsid']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      return { ok: false, reason: `${tool} not found (run tools/sandbox/install-deps.sh)` };
    }
  }
  if (!fs.existsSync(SSHD)) return { ok: false, reason: `${SSHD} not found (run tools/sandbox/install-deps.sh)` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-sandbox-check.'));
  try {
    const r = spawnSync(
      'unshare',
      [
        '--mount',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        'sh',
        '-ec',
        'mount -t tmpfs t "$1"; mkdir "$1/u" "$1/w" "$1/m"; mount -t overlay -o "lowerdir=/etc,upperdir=$1/u,workdir=$1/w" o "$1/m"; test -f "$1/m/passwd"',
        'sh',
        dir,
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (r.status !== 0) {
      return {
        ok: false,
        reason: `unshare/overlayfs does not work here: ${(r.stderr || r.error?.message || '').trim()}`,
      };
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { ok: true };
}

/** A free TCP port on 127.0.0.1 (free now; sshd start retries if somebody takes it meanwhile). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function signalCode(sig: NodeJS.Signals | null): number {
  const n = sig ? os.constants.signals[sig] : undefined;
  return n ? 128 + n : 1;
}

/** Spawn argv (no shell) in its own session/process group (so no controlling tty) and collect output. */
function run(
  argv: string[],
  opts: { input?: string | Buffer; env: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string },
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, {
      env: opts.env,
      cwd: opts.cwd ?? '/',
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the whole group, incl. nsenter's child inside the sandbox
      } catch {
        child.kill('SIGKILL');
      }
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res: ExecResult = {
        code: code ?? signalCode(signal),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) {
        reject(
          new Error(
            `timed out after ${opts.timeoutMs} ms: ${JSON.stringify(argv)}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`,
          ),
        );
      } else {
        resolve(res);
      }
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        /* command exited without reading all input: EPIPE */
      });
      child.stdin!.end(opts.input);
    }
  });
}

/** Host pid of the (only) child of pid. */
function childPid(pid: number): number | undefined {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    if (kids.length) return Number(kids[0]);
  } catch {
    /* no CONFIG_PROC_CHILDREN: scan */
  }
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) return Number(ent);
    } catch {
      /* raced */
    }
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

function waitExit(c: ChildProcess, timeoutMs: number): Promise<void> {
  if (exited(c)) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export async function createSandbox(opts: CreateSandboxOptions = {}): Promise<Sandbox> {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`sandbox not supported here: ${support.reason}`);
  installExitHook();
  const dir = fs.mkdtempSync(path.join(opts.tmpRoot ?? os.tmpdir(), 'keymaker-sandbox.'));
  const privateNet = opts.network === 'private';
  const netFlag = privateNet ? ['--net'] : [];
  const unshareArgs = ['--mount', ...netFlag, '--pid', '--fork', '--kill-child', '--mount-proc', INIT, dir];
  const unshare = spawn('unshare', unshareArgs, {
    stdio: ['pipe', 'pipe', 'pipe'],
    // The Node running the tests (tools/toolchain.sh may have provisioned it) is the sandbox's node.
    env: {
      ...BASE_ENV,
      KEYMAKER_SANDBOX_NODE: process.execPath,
      ...(privateNet ? { KEYMAKER_SANDBOX_NET: 'private' } : {}),
      ...(opts.overlayUsr ? { KEYMAKER_SANDBOX_OVERLAY_USR: '1' } : {}),
    },
    cwd: '/',
  });
  live.set(unshare, dir);
  let initErr = '';
  unshare.stderr.on('data', (b: Buffer) => (initErr += b.toString()));
  unshare.stdin.on('error', () => {});

  const cleanupDir = () => {
    // Normally empty on the host (the scratch tmpfs lived only in the sandbox's mount namespace).
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  };

  try {
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const t = setTimeout(
        () => reject(new Error(`sandbox not ready after ${opts.timeoutMs ?? 10_000} ms: ${initErr}`)),
        opts.timeoutMs ?? 10_000,
      );
      const onData = (b: Buffer) => {
        buf += b.toString();
        if (buf.includes('READY\n')) {
          clearTimeout(t);
          unshare.stdout.off('data', onData);
          unshare.stdout.resume();
          resolve();
        }
      };
      unshare.stdout.on('data', onData);
      unshare.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`sandbox init exited (${code ?? sig}) before ready: ${initErr}`));
      });
      unshare.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  } catch (e) {
    unshare.kill('SIGKILL');
    live.delete(unshare);
    await waitExit(unshare, 2000);
    cleanupDir();
    throw e;
  }
  const initPid = childPid(unshare.pid!);
  if (!initPid) {
    unshare.kill('SIGKILL');
    live.delete(unshare);
    cleanupDir();
    throw new Error('cannot find the sandbox init pid');
  }
  // Let a forgotten sandbox not keep jest alive; it dies when this process exits (stdin EOF / exit hook).
  unshare.unref();
  for (const s of [unshare.stdin, unshare.stdout, unshare.stderr]) (s as unknown as net.Socket).unref?.();

  let destroyed = false;
  let sshd: ChildProcess | undefined;
  let sshdPort: number | undefined;
  let log = '';
  const listenLine = (port: number) => `Server listening on 127.0.0.1 port ${port}.`;
  const countListen = (port: number) => log.split(listenLine(port)).length - 1;

  const exec = (argv: string[], o: ExecOptions = {}): Promise<ExecResult> => {
    if (destroyed) return Promise.reject(new Error('sandbox destroyed'));
    if (!argv.length) return Promise.reject(new Error('exec: empty argv'));
    return run(
      ['nsenter', `--target=${initPid}`, '--mount', ...netFlag, '--pid', `--wd=${o.cwd ?? '/'}`, '--', ...argv],
      {
        input: o.input,
        env: { ...BASE_ENV, ...o.env },
        timeoutMs: o.timeoutMs ?? 30_000,
      },
    );
  };
  const execOk = async (argv: string[], o: ExecOptions = {}): Promise<ExecResult> => {
    const r = await exec(argv, o);
    if (r.code !== 0) {
      throw new Error(
        `sandbox command failed (exit ${r.code}): ${JSON.stringify(argv)}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
      );
    }
    return r;
  };

  const waitListening = async (port: number, atLeast: number, timeoutMs: number, proc: ChildProcess) => {
    const deadline = Date.now() + timeoutMs;
    while (countListen(port) < atLeast) {
      if (exited(proc)) throw new Error(`sshd exited (${proc.exitCode ?? proc.signalCode}); log:\n${log}`);
      if (Date.now() > deadline)
        throw new Error(`sshd not listening on 127.0.0.1:${port} after ${timeoutMs} ms; log:\n${log}`);
      await sleep(20);
    }
  };

  const sshdHostPid = (): number => {
    if (!sshd || exited(sshd)) throw new Error(`sshd is not running; log:\n${log}`);
    const p = childPid(sshd.pid!); // nsenter forks for --pid; its child is sshd
    if (!p) throw new Error('cannot find the sshd pid');
    return p;
  };

  const startOnce = async (port: number, o: StartSshdOptions): Promise<void> => {
    const args = [
      '-D',
      '-e',
      '-p',
      String(port),
      '-o',
      'ListenAddress=127.0.0.1',
      '-o',
      `PidFile=/run/sshd-${port}.pid`,
    ];
    if (o.configFile) args.push('-f', o.configFile);
    if (o.logLevel) args.push('-o', `LogLevel=${o.logLevel}`);
    args.push(...(o.extraArgs ?? []));
    const before = log.length;
    const p = spawn('nsenter', [`--target=${initPid}`, '--mount', ...netFlag, '--pid', '--wd=/', '--', SSHD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...BASE_ENV },
      cwd: '/',
      detached: true,
    });
    p.stdout.on('data', (b: Buffer) => (log += b.toString()));
    p.stderr.on('data', (b: Buffer) => (log += b.toString()));
    p.on('error', (e) => (log += `spawn error: ${e.message}\n`));
    p.unref();
    (p.stdout as unknown as net.Socket).unref?.();
    (p.stderr as unknown as net.Socket).unref?.();
    sshd = p;
    sshdPort = port;
    try {
      await waitListening(port, countListen(port) + 1, o.timeoutMs ?? 10_000, p);
    } catch (e) {
      if (!exited(p)) p.kill('SIGKILL');
      sshd = undefined;
      sshdPort = undefined;
      (e as Error & { bindRace?: boolean }).bindRace = /Address already in use|Cannot bind any address/.test(
        log.slice(before),
      );
      throw e;
    }
  };

  const sb: Sandbox = {
    pid: initPid,
    hostPath: (p) => path.join(`/proc/${initPid}/root`, p),
    exec,
    execOk,

    async writeFile(p, content, mode = 0o644, owner = 'root:root') {
      await execOk(
        [
          'bash',
          '-c',
          'set -e; umask 022; mkdir -p -- "$(dirname -- "$1")"; umask 077; cat > "$1"; chown -- "$3" "$1"; chmod -- "$2" "$1"',
          'writeFile',
          p,
          mode.toString(8),
          owner,
        ],
        { input: content },
      );
    },

    async readFile(p) {
      return (await execOk(['cat', '--', p])).stdout;
    },

    async exists(p) {
      return (await exec(['test', '-e', p])).code === 0;
    },

    async startSshd(o = {}) {
      if (sshd && !exited(sshd)) throw new Error(`sshd already running on port ${sshdPort}`);
      for (let attempt = 1; ; attempt++) {
        const port = o.port ?? (await freePort());
        try {
          await startOnce(port, o);
          return { port };
        } catch (e) {
          if (o.port !== undefined || attempt >= 3 || !(e as { bindRace?: boolean }).bindRace) throw e;
        }
      }
    },

    async reloadSshd(timeoutMs = 10_000) {
      const pid = sshdHostPid();
      const port = sshdPort!;
      const n = countListen(port);
      process.kill(pid, 'SIGHUP'); // sshd re-execs itself with the same pid and re-reads its config
      await waitListening(port, n + 1, timeoutMs, sshd!);
    },

    async stopSshd() {
      if (!sshd || exited(sshd)) return;
      const p = sshd;
      try {
        process.kill(sshdHostPid(), 'SIGTERM');
      } catch {
        p.kill('SIGKILL');
      }
      await waitExit(p, 5000);
      sshd = undefined;
    },

    sshdLog: () => log,

    async ssh(user, o) {
      const port = o.port ?? sshdPort;
      if (!port) throw new Error('ssh: no port given and no sshd running');
      const cmd = o.command ?? 'true';
      const argv = [
        'ssh',
        '-F',
        '/dev/null',
        '-i',
        o.identityFile,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'IdentityAgent=none',
        '-o',
        `BatchMode=${o.batch ? 'yes' : 'no'}`,
        '-o',
        'PreferredAuthentications=publickey,keyboard-interactive',
        '-o',
        'NumberOfPasswordPrompts=1',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'LogLevel=ERROR',
        '-o',
        'ConnectTimeout=5',
        '-p',
        String(port),
        ...(o.extraArgs ?? []),
        `${user}@127.0.0.1`,
        '--',
        ...(Array.isArray(cmd) ? cmd : [cmd]),
      ];
      const env = { SSH_ASKPASS_REQUIRE: 'never' };
      const timeoutMs = o.timeoutMs ?? 30_000;
      if (o.inside) return exec(argv, { env, timeoutMs });
      return run(argv, { env: { ...BASE_ENV, ...env }, timeoutMs });
    },

    async upperDirChanges() {
      const script = `
        cd "$1/upper"
        for n in *; do
          d=/\${n//_//}
          (cd "$n" && find . -mindepth 1 -printf "%y $d/%P\\n")
        done
        find /home -mindepth 1 -printf "%y %p\\n"`;
      const r = await execOk(['bash', '-c', script, 'upperDirChanges', dir]);
      const types: Record<string, UpperDirChange['type']> = { f: 'file', d: 'dir', l: 'symlink', c: 'deleted' };
      return r.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => ({ path: line.slice(2), type: types[line[0]!] ?? 'other' }))
        .sort((a, b) => a.path.localeCompare(b.path));
    },

    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // SIGKILL to the namespace's PID 1 kills every process in it (sshd, cron, sessions) and the
      // mount namespace (overlays, scratch tmpfs) goes with the last one. unshare itself ignores SIGTERM.
      try {
        process.kill(initPid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      unshare.stdin.destroy();
      await waitExit(unshare, 5000);
      if (!exited(unshare)) unshare.kill('SIGKILL');
      live.delete(unshare);
      if (sshd) await waitExit(sshd, 2000);
      cleanupDir();
    },
  };
  return sb;
}

export { OVERLAID as OVERLAID_DIRS };

/**
 * `describe` for tests that need the sandbox: skipped (with the reason in the
 * name) where it cannot run, but an error under CI, where a missing install
 * must not pass as green.
 */
export function describeWithSandbox(name: string, body: () => void): void {
  const support = sandboxSupport();
  if (!support.ok && process.env.CI) throw new Error(`sandbox unsupported on CI: ${support.reason}`);
  if (support.ok) describe(name, body);
  else describe.skip(`${name} (skipped: ${support.reason})`, body);
}
