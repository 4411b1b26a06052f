// The detached agent's start and stop (step-handlers.ts) over a fake machine: root makes both sockets as the
// .socket units would and the agent gets them through setpriv as keymaker with CAP_KILL only; a failed start
// leaves no socket behind, and stopping removes the sockets the launcher made, nothing else.
import { agentLaunchArgv, agentLaunchEnv } from '../src/install/agent-launcher';
import { agentInstallPaths } from '../src/install/agent-mode';
import { performStep, type StepContext } from '../src/install/step-handlers';
import type { StartAgentStep } from '../src/install/steps';
import type { AgentLaunchSpec } from '../src/install/agent-launcher';
import type { HostSystem, PathInfo, RunResult } from '../src/system/host-system';
import { DEFAULT_PATHS } from '../src/system/paths';

const A = agentInstallPaths(DEFAULT_PATHS);
const STEP: StartAgentStep = {
  kind: 'startAgent',
  command: ['/usr/bin/node', '--max-semi-space-size=1', '/usr/local/lib/keymaker/keymaker-host.js', 'agent'],
  user: 'keymaker',
  setpriv: '/usr/bin/setpriv',
  userdbSocket: A.userdbSocket,
  keysSocketGroup: 'keymaker',
  keysSocket: A.keysSocket,
  pidFile: A.pidFile,
  logFile: A.logFile,
};

/** Just what starting and stopping the agent touch. */
function machine(launch: (spec: AgentLaunchSpec) => RunResult) {
  const files = new Map<string, { type: PathInfo['type']; content: string }>();
  const alive = new Set<number>();
  const launched: { argv: string[]; spec: AgentLaunchSpec }[] = [];
  const signals: string[] = [];
  const sys = {
    userIds: (name: string) => (name === 'keymaker' ? { uid: 997, gid: 995 } : undefined),
    groupId: (name: string) => (name === 'keymaker' ? 995 : undefined),
    readFile: (p: string) => {
      const f = files.get(p);
      return f?.type === 'file' ? { content: Buffer.from(f.content), mode: 0o644, uid: 0, gid: 0 } : undefined;
    },
    lstat: (p: string) => {
      const f = files.get(p);
      return f ? { type: f.type, mode: 0o644, uid: 0, gid: 0 } : undefined;
    },
    removeFile: (p: string) => void files.delete(p),
    processAlive: (pid: number) => alive.has(pid),
    processName: (pid: number) => (alive.has(pid) ? 'node' : undefined),
    signal: (pid: number, signal: string) => {
      signals.push(`${signal} ${pid}`);
      alive.delete(pid);
    },
    sleep: () => undefined,
    run: (argv: string[], opts?: { input?: string }): RunResult => {
      if (argv[1] === '-e') {
        const spec = JSON.parse(opts?.input ?? '') as AgentLaunchSpec;
        launched.push({ argv, spec });
        return launch(spec);
      }
      return { code: argv[0] === 'curl' && alive.size > 0 ? 0 : 7, stdout: '', stderr: '' };
    },
  };
  const lines: string[] = [];
  const ctx = {
    sys: sys as unknown as HostSystem,
    paths: DEFAULT_PATHS,
    sshd: {},
    log: (l: string) => lines.push(l),
    warn: (l: string) => lines.push(`warning: ${l}`),
  } as unknown as StepContext;
  /** What a launcher that worked leaves: both sockets, the pid file, a running node. */
  const started = (spec: AgentLaunchSpec): RunResult => {
    for (const s of spec.sockets) files.set(s.path, { type: 'other', content: '' });
    files.set(spec.pidFile, { type: 'file', content: '4321\n' });
    alive.add(4321);
    return { code: 0, stdout: '', stderr: '' };
  };
  return { ctx, files, alive, launched, signals, lines, started };
}

test('the launcher gets both sockets as the units make them, and an argv that drops to keymaker with CAP_KILL', () => {
  const m = machine((spec) => m.started(spec));
  performStep(m.ctx, STEP);
  expect(m.launched).toHaveLength(1);
  const { argv, spec } = m.launched[0]!;
  // Run with the agent's own node, as root.
  expect(argv.slice(0, 2)).toEqual(['/usr/bin/node', '-e']);
  expect(spec.sockets).toEqual([
    { path: A.userdbSocket, mode: 0o666, uid: 0, gid: 0 },
    { path: A.keysSocket, mode: 0o660, uid: 0, gid: 995 },
  ]);
  expect(spec.argv).toEqual([
    '/usr/bin/setpriv',
    '--reuid=997',
    '--regid=995',
    '--clear-groups',
    '--no-new-privs',
    '--bounding-set=-all,+kill',
    '--inh-caps=-all,+kill',
    '--ambient-caps=-all,+kill',
    '--',
    '/bin/sh',
    '-c',
    'umask 022; export LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=userdb:keys; exec "$@"',
    'keymaker-agent',
    ...STEP.command,
  ]);
  // Nothing from install's environment; its own NSS lookups skip its socket (exact service name).
  expect(spec.env).toEqual({
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
    SYSTEMD_BYPASS_USERDB: 'io.keymaker.agent',
  });
  expect(spec.exe).toBe('/usr/bin/node');
  expect(m.lines.join('\n')).toContain('started the keymaker agent as keymaker (pid 4321');
});

test('a launcher that fails: the error says why, and no socket it made is left', () => {
  const m = machine((spec) => {
    m.files.set(spec.sockets[0]!.path, { type: 'other', content: '' });
    return { code: 1, stdout: '', stderr: `${A.keysSocket}: another service is listening there\n` };
  });
  expect(() => performStep(m.ctx, STEP)).toThrow(
    `the keymaker agent did not start: ${A.keysSocket}: another service is listening there`,
  );
  expect(m.files.has(A.userdbSocket)).toBe(false);
});

test('stop: the agent is signalled, its pid file, log and sockets go; a file that is not a socket stays', () => {
  const m = machine((spec) => m.started(spec));
  performStep(m.ctx, STEP);
  m.files.set(A.logFile, { type: 'file', content: 'log\n' });
  // Somebody's regular file where a socket was: not keymaker's to remove.
  m.files.set(A.keysSocket, { type: 'file', content: 'not a socket' });
  performStep(m.ctx, {
    kind: 'stopAgent',
    pidFile: A.pidFile,
    logFile: A.logFile,
    sockets: [A.userdbSocket, A.keysSocket],
  });
  expect(m.signals).toEqual(['SIGTERM 4321']);
  expect([...m.files.keys()]).toEqual([A.keysSocket]);
  expect(m.lines).toContain('stopped the keymaker agent');
});

test('the launch argv never runs the agent as root', () => {
  const base = { setpriv: '/usr/bin/setpriv', uid: 997, gid: 995, command: ['/usr/bin/node'] };
  expect(() => agentLaunchArgv({ ...base, uid: 0 })).toThrow(/non-root id/);
  expect(() => agentLaunchArgv({ ...base, gid: 0 })).toThrow(/non-root id/);
  expect(() => agentLaunchArgv({ ...base, setpriv: 'setpriv' })).toThrow(/absolute path/);
});

test("a step with install's extra CA file: the agent is launched with NODE_EXTRA_CA_CERTS naming it", () => {
  const m = machine((spec) => m.started(spec));
  performStep(m.ctx, { ...STEP, extraCaCerts: '/etc/ssl/proxy-ca.pem' });
  expect(m.launched[0]!.spec.env).toMatchObject({ NODE_EXTRA_CA_CERTS: '/etc/ssl/proxy-ca.pem' });
});

test("the agent's environment: fixed, plus install's NODE_EXTRA_CA_CERTS when it is an absolute path", () => {
  const fixed = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
    SYSTEMD_BYPASS_USERDB: 'io.keymaker.agent',
  };
  // Credentials, proxies and NODE_OPTIONS of the shell that ran install never reach the agent.
  const shell = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', NODE_OPTIONS: '--inspect', HTTPS_PROXY: 'http://x', HOME: '/root' };
  expect(agentLaunchEnv('io.keymaker.agent', shell)).toEqual(fixed);
  expect(agentLaunchEnv('io.keymaker.agent', { ...shell, NODE_EXTRA_CA_CERTS: '/etc/ssl/proxy-ca.pem' })).toEqual({
    ...fixed,
    NODE_EXTRA_CA_CERTS: '/etc/ssl/proxy-ca.pem',
  });
  expect(agentLaunchEnv('io.keymaker.agent', { NODE_EXTRA_CA_CERTS: 'proxy-ca.pem' })).toEqual(fixed);
  expect(agentLaunchEnv('io.keymaker.agent', { NODE_EXTRA_CA_CERTS: '/etc/ca.pem\nX=1' })).toEqual(fixed);
});
