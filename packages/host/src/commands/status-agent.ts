/*
 * The agent-mode rows of `keymaker status`, and the one sshd fact `sshd -T` hides: an AuthorizedKeysCommand put on
 * sshd's command line by a unit drop-in (EC2 Instance Connect's upstream package does this; a `-o` option beats
 * sshd_config, and `sshd -T` run by hand does not see it). Same split as status.ts: pure checks over facts, and
 * a thin gatherer that only reads (the agent's GET /status, nsswitch.conf, one getent probe, unit drop-ins).
 */
import * as http from 'node:http';
import * as path from 'node:path';
import type { AgentStatus } from '../agent/agent';
import { AGENT_MANAGED_GROUP } from '../install/sshd-config';
import { databasesWithoutSystemd } from '../install/nsswitch';
import type { HostSystem } from '../system/host-system';

/** `GET /status` on the agent's keys socket. */
export type AgentFact =
  { state: 'running'; socket: string; status: AgentStatus } | { state: 'unreachable'; socket: string; reason: string };

/** NSS wiring: the nsswitch lines without `systemd`, and one lookup of the managed group through NSS. */
export interface NssFact {
  file: string;
  missing: string[] | 'unreadable';
  probe: { group: string; ok: boolean; ms: number; output: string };
}

/** A unit drop-in that starts sshd with its own AuthorizedKeysCommand. */
export interface SshdCommandLineFact {
  file: string;
  command: string;
}

export interface CheckRow {
  status: 'ok' | 'problem';
  summary: string;
  items: { name: string; value: string; ok: boolean }[];
}

export function agentCheckRow(fact: AgentFact): CheckRow {
  if (fact.state === 'unreachable')
    return {
      status: 'problem',
      summary: `not reachable on ${fact.socket}: ${fact.reason} (IAM users cannot log in; systemctl status keymaker-agent)`,
      items: [],
    };
  const s = fact.status;
  const items = [
    { name: 'version', value: s.version, ok: true },
    { name: 'pid', value: String(s.pid), ok: true },
    { name: 'uptime', value: `${s.uptimeSeconds} s`, ok: true },
    { name: 'state', value: s.closedReason ? `${s.state}: ${s.closedReason}` : s.state, ok: s.state === 'serving' },
    { name: 'refresh', value: `every ${s.refreshSeconds} s`, ok: true },
    {
      name: 'caches',
      value: `${s.caches.users} user(s), ${s.caches.negative} refused name(s), ${s.caches.keyBodies} key body(ies)`,
      ok: true,
    },
    {
      name: 'IAM',
      value: `${s.iam.calls} call(s), ${s.iam.errors} error(s)${s.iam.avgMs === undefined ? '' : `, avg ${s.iam.avgMs} ms, max ${s.iam.maxMs} ms`}`,
      ok: true,
    },
    ...(s.lastRefresh
      ? [
          {
            name: 'lastRefresh',
            value: `${s.lastRefresh.at}: ${s.lastRefresh.checked} checked, ${s.lastRefresh.revoked} revoked, ${s.lastRefresh.failed} failed`,
            ok: true,
          },
        ]
      : []),
    ...s.lastErrors.map((e) => ({ name: 'error', value: `${e.at} ${e.message}`, ok: true })),
  ];
  return s.state === 'serving'
    ? { status: 'ok', summary: `serving (${s.version}, up ${s.uptimeSeconds} s)`, items }
    : { status: 'problem', summary: `closed: ${s.closedReason ?? 'no configuration'} (no IAM user resolves)`, items };
}

export function nssCheckRow(fact: NssFact): CheckRow {
  const items = [
    {
      name: 'nsswitch',
      value:
        fact.missing === 'unreadable'
          ? `${fact.file} unreadable`
          : fact.missing.length === 0
            ? 'systemd on passwd, group, shadow'
            : `no systemd on ${fact.missing.join(', ')}`,
      ok: fact.missing !== 'unreadable' && fact.missing.length === 0,
    },
    {
      name: 'probe',
      value: `getent group ${fact.probe.group}: ${fact.probe.ok ? fact.probe.output : 'not found'} (${fact.probe.ms} ms)`,
      ok: fact.probe.ok,
    },
  ];
  const problems = items.filter((i) => !i.ok).map((i) => i.value);
  return problems.length === 0
    ? { status: 'ok', summary: 'NSS asks the agent (libnss-systemd)', items }
    : { status: 'problem', summary: problems.join('; '), items };
}

/** The problem a command-line AuthorizedKeysCommand makes, in either mode. */
export function sshdCommandLineProblem(facts: SshdCommandLineFact[]): string | undefined {
  if (facts.length === 0) return undefined;
  return facts
    .map(
      (f) =>
        `${f.file} starts sshd with -o "${f.command}" (EC2 Instance Connect?), which wins over keymaker's drop-in; remove that drop-in or its -o, then reload`,
    )
    .join('; ');
}

// ---------------------------------------------------------------- gathering (reads only)

export function gatherAgent(socket: string, timeoutMs = 3000): Promise<AgentFact> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath: socket, path: '/status', timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (response.statusCode !== 200)
          return resolve({ state: 'unreachable', socket, reason: `GET /status answered ${response.statusCode}` });
        try {
          resolve({
            state: 'running',
            socket,
            status: JSON.parse(Buffer.concat(chunks).toString('utf8')) as AgentStatus,
          });
        } catch {
          resolve({ state: 'unreachable', socket, reason: 'GET /status answered something that is not JSON' });
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (error) => resolve({ state: 'unreachable', socket, reason: error.message }));
  });
}

export function gatherNss(host: HostSystem, file: string, group = AGENT_MANAGED_GROUP): NssFact {
  const text = host.readFile(file)?.content.toString('utf8');
  const started = Date.now();
  const r = host.run(['getent', 'group', group], { timeoutMs: 10_000 });
  return {
    file,
    missing: text === undefined ? 'unreadable' : databasesWithoutSystemd(text),
    probe: { group, ok: r.code === 0, ms: Date.now() - started, output: r.stdout.trim() },
  };
}

const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

/** ExecStart lines of sshd's unit drop-ins that pass AuthorizedKeysCommand with -o. */
export function gatherSshdCommandLine(host: HostSystem, unitDirs = UNIT_DIRS): SshdCommandLineFact[] {
  const found: SshdCommandLineFact[] = [];
  for (const base of unitDirs) {
    for (const unit of ['ssh.service.d', 'sshd.service.d']) {
      const dir = path.join(base, unit);
      for (const name of (host.readdir(dir) ?? []).filter((n) => n.endsWith('.conf')).sort()) {
        const file = path.join(dir, name);
        const text = host.readFile(file)?.content.toString('utf8') ?? '';
        for (const line of text.split('\n')) {
          if (!/^\s*ExecStart\s*=/.test(line)) continue;
          const match = /-o\s*["']?\s*(AuthorizedKeysCommand(?:\s+|=)[^"'\n]*)/i.exec(line);
          if (match) found.push({ file, command: match[1]!.trim() });
        }
      }
    }
  }
  return found;
}
