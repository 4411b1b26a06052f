// The real launcher (agent-launcher.ts) as root, with the real setpriv: the sockets it makes have the .socket
// units' owner and mode, and the process it starts is unprivileged with CAP_KILL only, no_new_privs, a fixed
// environment, and finds both sockets the way sd_listen_fds(3) says (LISTEN_PID its own pid). Only a temp dir is
// touched; "nobody" stands in for the keymaker user.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentLaunchArgv, agentLaunchEnv, LAUNCHER_SCRIPT, type AgentLaunchSpec } from '../src/install/agent-launcher';
import { readAll } from './agent-client';

const NOBODY = 65534;
const setpriv = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
const runnable = process.getuid?.() === 0 && /--ambient-caps/.test(setpriv.stdout ?? '');
const SETPRIV = spawnSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).stdout.trim();

/** Stands in for `keymaker agent`: says what it is, then answers on each inherited socket with its name. */
const FAKE_AGENT = `
const fs = require('node:fs'), net = require('node:net');
const status = fs.readFileSync('/proc/self/status', 'utf8');
const pick = (k) => status.match(new RegExp('^' + k + ':[ \\\\t]*(.*)$', 'm'))[1].trim();
process.stdout.write(JSON.stringify({
  pid: process.pid, env: process.env, uid: pick('Uid'), gid: pick('Gid'), groups: pick('Groups'),
  capEff: pick('CapEff'), capAmb: pick('CapAmb'), capBnd: pick('CapBnd'), nnp: pick('NoNewPrivs'),
}) + '\\n');
const names = process.env.LISTEN_FDNAMES.split(':');
names.forEach((name, i) => net.createServer((s) => s.end(name)).listen({ fd: 3 + i }));
`;

(runnable ? describe : describe.skip)('the detached agent launcher, as root with setpriv', () => {
  let dir: string;
  let spec: AgentLaunchSpec;
  const launch = () =>
    spawnSync(process.execPath, ['-e', LAUNCHER_SCRIPT], {
      input: JSON.stringify(spec),
      encoding: 'utf8',
      timeout: 30_000,
    });
  const pid = () => Number(fs.readFileSync(spec.pidFile, 'utf8').trim());

  beforeAll(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'keymaker-launcher-'));
    spec = {
      sockets: [
        { path: join(dir, 'io.keymaker.agent'), mode: 0o666, uid: 0, gid: 0 },
        { path: join(dir, 'keys.sock'), mode: 0o660, uid: 0, gid: NOBODY },
      ],
      argv: agentLaunchArgv({
        setpriv: SETPRIV,
        uid: NOBODY,
        gid: NOBODY,
        command: [process.execPath, '-e', FAKE_AGENT],
      }),
      env: agentLaunchEnv('io.keymaker.agent'),
      exe: process.execPath,
      pidFile: join(dir, 'agent.pid'),
      logFile: join(dir, 'agent.log'),
    };
  });

  afterAll(() => {
    try {
      process.kill(pid(), 'SIGKILL');
    } catch {
      /* not started, or gone */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('starts it unprivileged with CAP_KILL alone, its two sockets at fd 3 and 4 under their names', async () => {
    const r = launch();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const agent = pid();
    // By the time the launcher exits, the process is node (what uninstall's pid check asks).
    expect(fs.readFileSync(`/proc/${agent}/comm`, 'utf8').trim()).toBe('node');
    const stat = (p: string) => {
      const s = fs.lstatSync(p);
      return `${s.isSocket() ? 'socket' : 'not a socket'} ${(s.mode & 0o777).toString(8)} ${s.uid}:${s.gid}`;
    };
    expect(stat(spec.sockets[0]!.path)).toBe('socket 666 0:0');
    expect(stat(spec.sockets[1]!.path)).toBe(`socket 660 0:${NOBODY}`);
    expect(await readAll(spec.sockets[0]!.path)).toBe('userdb');
    expect(await readAll(spec.sockets[1]!.path)).toBe('keys');
    const report = JSON.parse(fs.readFileSync(spec.logFile, 'utf8').trim().split('\n')[0]!) as Record<string, unknown>;
    expect(report).toEqual({
      pid: agent,
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin',
        SYSTEMD_BYPASS_USERDB: 'io.keymaker.agent',
        LISTEN_PID: String(agent),
        LISTEN_FDS: '2',
        LISTEN_FDNAMES: 'userdb:keys',
        // sh's own, from the launcher's cwd (systemd's default WorkingDirectory=/ too).
        PWD: '/',
      },
      uid: `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`,
      gid: `${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`,
      groups: '',
      // CAP_KILL is bit 5: effective through the ambient set, and nothing else can ever be gained.
      capEff: '0000000000000020',
      capAmb: '0000000000000020',
      capBnd: '0000000000000020',
      nnp: '1',
    });
    // No temporary socket or pid file is left next to the real ones.
    expect(fs.readdirSync(dir).sort()).toEqual(['agent.log', 'agent.pid', 'io.keymaker.agent', 'keys.sock']);
  });

  test('a socket somebody answers on is never taken over', () => {
    const r = launch();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${spec.sockets[0]!.path}: another service is listening there`);
  });
});
