/**
 * Where agent mode's pieces go on a host, derived from HostPaths so tests that move keymaker's paths move
 * these too, and the one host fact the planner cannot read from a file: whether libnss-systemd is installed.
 */
import * as path from 'node:path';
import { DEFAULT_KEYS_SOCKET } from '../agent/agent';
import { DEFAULT_USERDB_SERVICE, USERDB_DIR } from '../agent/userdb-service';
import type { HostSystem } from '../system/host-system';
import type { HostPaths } from '../system/paths';
import { AGENT_KEYS_SOCKET, AGENT_SERVICE, AGENT_SOCKET } from './agent-units';

export type InstallMode = 'compat' | 'agent';

export interface AgentInstallPaths {
  nsswitch: string;
  /** The AuthorizedKeysCommand of agent mode (keys-client-script.ts), next to compat's wrapper. */
  keysClient: string;
  keysSocket: string;
  userdbSocket: string;
  /** The detached agent's (no systemd): pid and output. */
  pidFile: string;
  logFile: string;
  units: { socket: string; keysSocket: string; service: string };
}

export function agentInstallPaths(paths: HostPaths): AgentInstallPaths {
  return {
    nsswitch: '/etc/nsswitch.conf',
    keysClient: path.join(path.dirname(paths.authorizedKeysCommand), 'keymaker-keys-client'),
    keysSocket: DEFAULT_KEYS_SOCKET,
    userdbSocket: path.join(USERDB_DIR, DEFAULT_USERDB_SERVICE),
    pidFile: '/run/keymaker-agent.pid',
    logFile: path.join(paths.stateDir, 'agent.log'),
    units: {
      socket: path.join(paths.systemdDir, AGENT_SOCKET),
      keysSocket: path.join(paths.systemdDir, AGENT_KEYS_SOCKET),
      service: path.join(paths.systemdDir, AGENT_SERVICE),
    },
  };
}

/** libnss_systemd.so.2 under /lib/<multiarch>/, /usr/lib*\/ (or directly in them), or undefined. */
export function findNssSystemd(sys: HostSystem): string | undefined {
  for (const base of ['/lib', '/lib64', '/usr/lib', '/usr/lib64']) {
    for (const dir of ['', ...(sys.readdir(base) ?? [])]) {
      const candidate = path.join(base, dir, 'libnss_systemd.so.2');
      const info = sys.stat(candidate);
      if (info && info.type === 'file') return candidate;
    }
  }
  return undefined;
}

/**
 * setpriv where util-linux puts it, if it can set ambient capabilities (util-linux >= 2.31; older ones, and
 * Debian 10's separate package, may lack --ambient-caps): undefined otherwise.
 */
export function findSetpriv(sys: HostSystem): string | undefined {
  const found = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv', '/sbin/setpriv'].find(
    (p) => sys.stat(p)?.type === 'file',
  );
  if (!found) return undefined;
  const help = sys.run([found, '--help']);
  return /--ambient-caps\b/.test(help.stdout + help.stderr) ? found : undefined;
}
