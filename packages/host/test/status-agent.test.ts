import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_HOST_CONFIG } from '../src/config/host-config';
import { DEFAULT_PATHS } from '../src/system/paths';
import type { AgentStatus } from '../src/agent/agent';
import { assessStatus, formatStatusTable, type StatusFacts } from '../src/commands/status';
import { gatherAgent, gatherSshdCommandLine } from '../src/commands/status-agent';
import { nodeHostSystem } from '../src/system/host-system';

const KEYS_CLIENT = '/usr/local/sbin/keymaker-keys-client';

const serving: AgentStatus = {
  version: '0.3.0',
  pid: 4242,
  startedAt: '2026-12-02T00:00:00.000Z',
  uptimeSeconds: 120,
  state: 'serving',
  refreshSeconds: 300,
  lastRefresh: { at: '2026-12-02T00:01:00.000Z', checked: 3, revoked: 1, failed: 0 },
  caches: { users: 3, negative: 5, inFlight: 0, keyBodies: 4, answers: 1 },
  iam: { calls: 12, errors: 0, lastMs: 40, avgMs: 45, maxMs: 90 },
  lastErrors: [],
  sockets: { userdb: '/run/systemd/userdb/io.keymaker.agent', keys: '/run/keymaker/keys.sock' },
};

/** A host installed in agent mode, everything fine. */
function agentFacts(over: Partial<StatusFacts> = {}): StatusFacts {
  return {
    configFile: DEFAULT_PATHS.configFile,
    authorizedKeysCommand: DEFAULT_PATHS.authorizedKeysCommand,
    keysClient: KEYS_CLIENT,
    hostConfig: { state: 'ok', config: { ...DEFAULT_HOST_CONFIG } },
    sshd: {
      state: 'read',
      binary: '/usr/sbin/sshd',
      // Agent mode leaves the administrator's keyboard-interactive and AuthenticationMethods alone.
      settings: {
        authorizedkeyscommand: `${KEYS_CLIENT} %u %f`,
        authorizedkeyscommanduser: 'keymaker',
        usepam: 'yes',
        kbdinteractiveauthentication: 'no',
        authenticationmethods: 'any',
        pubkeyauthentication: 'yes',
      },
    },
    sshdCommandLine: [],
    install: {
      state: 'installed',
      journal: '/var/lib/keymaker/install-state.json',
      files: 9,
      lookupUser: 'keymaker',
      mode: 'agent',
    },
    managedAccounts: { state: 'read', file: DEFAULT_PATHS.managedAccounts, count: 0, exists: false },
    agent: { state: 'running', socket: '/run/keymaker/keys.sock', status: serving },
    nss: {
      file: '/etc/nsswitch.conf',
      missing: [],
      probe: { group: 'keymaker-users', ok: true, ms: 3, output: 'keymaker-users:x:2147352576:alice' },
    },
    ...over,
  };
}

const statusOf = (facts: StatusFacts, id: string) => assessStatus(facts).checks.find((c) => c.id === id);

test("agent mode, all well: the keys client is keymaker's command, the agent and NSS rows are ok", () => {
  const report = assessStatus(agentFacts());
  expect(report.checks.map((c) => [c.id, c.status]).filter(([, s]) => s !== 'skipped')).toEqual([
    ['hostConfig', 'ok'],
    ['sshd', 'ok'],
    ['install', 'ok'],
    ['managedAccounts', 'ok'],
    ['agent', 'ok'],
    ['nss', 'ok'],
  ]);
  const table = formatStatusTable(report);
  expect(table).toMatch(/^agent +ok +serving \(0\.3\.0, up 120 s\)$/m);
  expect(table).toMatch(/caches +3 user\(s\), 5 refused name\(s\), 4 key body\(ies\)$/m);
  expect(table).toMatch(/IAM +12 call\(s\), 0 error\(s\), avg 45 ms, max 90 ms$/m);
  expect(table).toMatch(/^install +ok +installed, agent mode/m);
});

test('the compat command in agent mode, or the keys client in compat mode, is a problem', () => {
  const facts = agentFacts();
  if (facts.sshd.state === 'read')
    facts.sshd.settings.authorizedkeyscommand = `${DEFAULT_PATHS.authorizedKeysCommand} %u %f`;
  expect(statusOf(facts, 'sshd')?.status).toBe('problem');
});

test('the agent unreachable or closed, NSS not wired, the probe failing: problems, exit 50', () => {
  for (const over of [
    { agent: { state: 'unreachable', socket: '/run/keymaker/keys.sock', reason: 'connect ENOENT' } },
    {
      agent: {
        state: 'running',
        socket: '/s',
        status: { ...serving, state: 'closed', closedReason: 'configuration unreadable: x' },
      },
    },
    {
      nss: {
        file: '/etc/nsswitch.conf',
        missing: ['shadow'],
        probe: { group: 'keymaker-users', ok: true, ms: 1, output: 'x' },
      },
    },
    {
      nss: {
        file: '/etc/nsswitch.conf',
        missing: [],
        probe: { group: 'keymaker-users', ok: false, ms: 1, output: '' },
      },
    },
  ] as Partial<StatusFacts>[]) {
    const report = assessStatus(agentFacts(over));
    expect(report.exitCode).toBe(50);
  }
  expect(
    statusOf(agentFacts({ agent: { state: 'unreachable', socket: '/k', reason: 'connect ENOENT' } }), 'agent')?.summary,
  ).toContain('IAM users cannot log in');
});

test("EC2 Instance Connect's -o AuthorizedKeysCommand on sshd's command line is found and named", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-units-'));
  try {
    fs.mkdirSync(path.join(dir, 'ssh.service.d'));
    fs.writeFileSync(
      path.join(dir, 'ssh.service.d', 'ec2-instance-connect.conf'),
      '[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D -o "AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %%u %%f" -o "AuthorizedKeysCommandUser ec2-instance-connect" $SSHD_OPTS\n',
    );
    fs.writeFileSync(path.join(dir, 'ssh.service.d', 'other.conf'), '[Service]\nExecStart=/usr/sbin/sshd -D\n');
    const found = gatherSshdCommandLine(nodeHostSystem(), [dir]);
    expect(found).toEqual([
      {
        file: path.join(dir, 'ssh.service.d', 'ec2-instance-connect.conf'),
        command: 'AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %%u %%f',
      },
    ]);
    const sshd = statusOf(agentFacts({ sshdCommandLine: found }), 'sshd');
    expect(sshd?.status).toBe('problem');
    expect(sshd?.summary).toContain('wins over keymaker');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gatherAgent: GET /status over the socket; no agent or a non-answer is "unreachable"', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-status-agent-'));
  const socket = path.join(dir, 'keys.sock');
  const server = http.createServer((request, response) => {
    response.writeHead(request.url === '/status' ? 200 : 404, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify(serving));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    expect(await gatherAgent(socket)).toEqual({ state: 'running', socket, status: serving });
    expect(await gatherAgent(path.join(dir, 'absent.sock'))).toMatchObject({ state: 'unreachable' });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
