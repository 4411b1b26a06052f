import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AGENT_KEYS_SOCKET,
  AGENT_SERVICE,
  AGENT_SOCKET,
  agentKeysSocketUnit,
  agentServiceUnit,
  agentSocketUnit,
  type AgentUnitOptions,
} from '../src/install/agent-units';

const OPTIONS: AgentUnitOptions = {
  nodePath: '/usr/local/lib/keymaker/node',
  agentEntry: '/usr/local/lib/keymaker/keymaker.mjs',
  configFile: '/etc/keymaker/config.json',
  user: 'keymaker',
  userdbSocket: '/run/systemd/userdb/io.keymaker.Agent',
  keysSocket: '/run/keymaker/keys.sock',
  keysSocketGroup: 'keymaker-lookup',
};

function setting(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

test('the sockets exist before sshd starts, NSS may connect to userdb, only the lookup group to keys', () => {
  const userdb = agentSocketUnit(OPTIONS);
  const keys = agentKeysSocketUnit(OPTIONS);
  for (const unit of [userdb, keys]) expect(setting(unit, 'Before')[0]).toContain('sshd.service');
  expect(setting(userdb, 'ListenStream')).toEqual([OPTIONS.userdbSocket]);
  expect(setting(userdb, 'SocketMode')).toEqual(['0666']);
  expect(setting(keys, 'ListenStream')).toEqual([OPTIONS.keysSocket]);
  expect(setting(keys, 'SocketGroup')).toEqual(['keymaker-lookup']);
  expect(setting(keys, 'SocketMode')).toEqual(['0660']);
  expect(setting(keys, 'Service')).toEqual([AGENT_SERVICE]);
});

test('the service runs unprivileged and hardened, with writable state and cache of its own, and only CAP_KILL', () => {
  const unit = agentServiceUnit(OPTIONS);
  expect(setting(unit, 'User')).toEqual(['keymaker']);
  expect(setting(unit, 'ExecStart')).toEqual([
    // Memory over peak speed: the agent's RSS stays near its live heap (AGENT_NODE_FLAGS).
    '/usr/local/lib/keymaker/node --max-semi-space-size=1 --optimize-for-size --no-opt /usr/local/lib/keymaker/keymaker.mjs agent --config /etc/keymaker/config.json',
  ]);
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['PrivateTmp', 'yes'],
    ['StateDirectory', 'keymaker-agent'],
    ['CacheDirectory', 'keymaker-agent'],
    // Ending a revoked user's processes is the one privileged act (end-sessions.ts).
    ['CapabilityBoundingSet', 'CAP_KILL'],
    ['AmbientCapabilities', 'CAP_KILL'],
  ]) {
    expect(setting(unit, key!)).toEqual([value]);
  }
  expect(setting(unit, 'Requires')[0]).toBe(`${AGENT_SOCKET} ${AGENT_KEYS_SOCKET}`);
});

test("the agent's own NSS lookups bypass its userdb service, named exactly as the socket is (systemd compares case)", () => {
  const unit = agentServiceUnit({ ...OPTIONS, userdbSocket: '/run/systemd/userdb/io.keymaker.agent' });
  expect(setting(unit, 'Environment')).toEqual(['SYSTEMD_BYPASS_USERDB=io.keymaker.agent']);
});

test.each([
  ['nodePath', 'node'],
  ['agentEntry', '/opt/key maker.mjs'],
  ['configFile', '/etc/keymaker/config.json\nExecStartPre=/bin/sh'],
  ['user', 'root; rm'],
  ['keysSocketGroup', '../wheel'],
])('a %s that would change what systemd runs is refused', (field, value) => {
  expect(() => agentServiceUnit({ ...OPTIONS, [field]: value })).toThrow(/agent unit/);
});

// systemd-analyze is the authority on unit syntax; skip only where it does not exist.
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
(analyze ? test : test.skip)('systemd-analyze accepts the three units', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keymaker-units-'));
  writeFileSync(join(dir, AGENT_SOCKET), agentSocketUnit(OPTIONS));
  writeFileSync(join(dir, AGENT_KEYS_SOCKET), agentKeysSocketUnit(OPTIONS));
  writeFileSync(join(dir, AGENT_SERVICE), agentServiceUnit(OPTIONS));
  const result = spawnSync(
    'systemd-analyze',
    ['verify', '--man=no', ...[AGENT_SOCKET, AGENT_KEYS_SOCKET, AGENT_SERVICE].map((u) => join(dir, u))],
    { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'warning' } },
  );
  // Unknown settings and syntax errors are reported as "Unknown key name" / "Invalid"; a missing ExecStart binary
  // on this machine is not the unit's fault.
  const complaints = (result.stderr + result.stdout)
    .split('\n')
    .filter((l) => /keymaker-agent/.test(l) && !/is not executable|No such file|Command .* is not executable/.test(l));
  expect(complaints).toEqual([]);
});
