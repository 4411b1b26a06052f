/**
 * The systemd units of agent mode, as text. Socket activation: systemd creates both sockets before sshd starts
 * (`Before=sshd.service ssh.service` on the socket), so a login that arrives while the agent is still loading waits
 * in the listen queue instead of failing; the agent takes the sockets from LISTEN_FDS (agent/listen-fds.ts).
 *
 * The service runs as the unprivileged `keymaker` user with the hardening issue 11 asks for: a read-only system
 * (`ProtectSystem=strict`), no privilege gain, a private /tmp, and writable state and cache directories of its own
 * that systemd creates with the right owner. It needs the network (IAM, IMDS) and Unix sockets, nothing else.
 * Where systemd is not PID 1, agent-launcher.ts makes the same sockets and the same privilege drop by hand.
 */
import * as path from 'node:path';
import { InputError } from '@keymaker/core';

/**
 * Node flags of the agent process. It allocates little and keeps little (its live heap is ~13 MB with 1,000 users),
 * but V8 sizes its heap for throughput and does not give the pages back. bench/, VmRSS with 1,000 users resolved:
 * 130 MiB with no flags; 108 with a 1 MiB young generation; 82 with `--optimize-for-size`, which keeps the old
 * generation near the live heap; 71 with `--no-opt`, which leaves V8's optimizing compiler (its code in the node
 * binary and what it compiles) untouched. The agent's CPU time for those 1,000 resolutions did not change (~10 s
 * either way): its work is IAM round trips and small parses. What is left is mostly the node binary's own pages
 * (~45 MiB, file-backed, shared with any other node process); its anonymous memory is ~25 MiB.
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size', '--no-opt'] as const;

export interface AgentUnitOptions {
  /** Absolute path of the node binary the agent runs on. */
  nodePath: string;
  /** Absolute path of the CLI bundle that has the `agent` command. */
  agentEntry: string;
  /** The host config the agent reads (root-owned, world-readable). */
  configFile: string;
  /** The unprivileged user (and group) the agent runs as. */
  user: string;
  /** The userdb socket NSS connects to: /run/systemd/userdb/<reverse-DNS name>. */
  userdbSocket: string;
  /** The keys socket sshd's login command asks. */
  keysSocket: string;
  /** The group whose members may connect to the keys socket (the AuthorizedKeysCommandUser's group). */
  keysSocketGroup: string;
}

export const AGENT_SERVICE = 'keymaker-agent.service';
export const AGENT_SOCKET = 'keymaker-agent.socket';
/** Names the agent looks up in LISTEN_FDNAMES. */
export const USERDB_FD_NAME = 'userdb';
export const KEYS_FD_NAME = 'keys';

function assertAbsolute(label: string, value: string): void {
  // A unit line is one line: a newline or a relative path would change what systemd runs.
  if (!value.startsWith('/') || /[\s\\"'$%;]/.test(value)) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `agent unit: ${label} must be an absolute path without spaces or quotes: ${JSON.stringify(value)}`,
    );
  }
}

function assertName(label: string, value: string): void {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(value)) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `agent unit: ${label} must be a Linux user or group name: ${JSON.stringify(value)}`,
    );
  }
}

function checkOptions(o: AgentUnitOptions): void {
  assertAbsolute('nodePath', o.nodePath);
  assertAbsolute('agentEntry', o.agentEntry);
  assertAbsolute('configFile', o.configFile);
  assertAbsolute('userdbSocket', o.userdbSocket);
  assertAbsolute('keysSocket', o.keysSocket);
  assertName('user', o.user);
  assertName('keysSocketGroup', o.keysSocketGroup);
}

const HEADER = '# Written by keymaker install; "keymaker uninstall" removes it.';

export function agentSocketUnit(o: AgentUnitOptions): string {
  checkOptions(o);
  return [
    HEADER,
    '[Unit]',
    'Description=keymaker agent sockets (NSS userdb and SSH keys)',
    'Before=sockets.target sshd.service ssh.service',
    '',
    '[Socket]',
    // NSS in every process asks the userdb socket: anyone may connect; the agent answers only what `getent` may show.
    `ListenStream=${o.userdbSocket}`,
    `FileDescriptorName=${USERDB_FD_NAME}`,
    'SocketMode=0666',
    '',
    '[Install]',
    'WantedBy=sockets.target',
    '',
  ].join('\n');
}

/** The keys socket is a second socket unit so it can have its own group and mode. */
export function agentKeysSocketUnit(o: AgentUnitOptions): string {
  checkOptions(o);
  return [
    HEADER,
    '[Unit]',
    'Description=keymaker agent socket for sshd AuthorizedKeysCommand',
    'Before=sockets.target sshd.service ssh.service',
    '',
    '[Socket]',
    `ListenStream=${o.keysSocket}`,
    `FileDescriptorName=${KEYS_FD_NAME}`,
    `Service=${AGENT_SERVICE}`,
    'SocketUser=root',
    `SocketGroup=${o.keysSocketGroup}`,
    'SocketMode=0660',
    'DirectoryMode=0755',
    '',
    '[Install]',
    'WantedBy=sockets.target',
    '',
  ].join('\n');
}

export const AGENT_KEYS_SOCKET = 'keymaker-agent-keys.socket';

export function agentServiceUnit(o: AgentUnitOptions): string {
  checkOptions(o);
  return [
    HEADER,
    '[Unit]',
    'Description=keymaker agent: IAM users and groups for NSS and sshd',
    'Documentation=man:keymaker(1)',
    `Requires=${AGENT_SOCKET} ${AGENT_KEYS_SOCKET}`,
    `After=network-online.target ${AGENT_SOCKET} ${AGENT_KEYS_SOCKET}`,
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${o.nodePath} ${AGENT_NODE_FLAGS.join(' ')} ${o.agentEntry} agent --config ${o.configFile}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    `User=${o.user}`,
    `Group=${o.user}`,
    'Restart=always',
    'RestartSec=1s',
    // Its own users must not resolve through itself while it starts (NSS self-loop). systemd compares the
    // service name (the socket's file name) exactly.
    `Environment=SYSTEMD_BYPASS_USERDB=${path.basename(o.userdbSocket)}`,
    'StateDirectory=keymaker-agent',
    'StateDirectoryMode=0700',
    'CacheDirectory=keymaker-agent',
    'CacheDirectoryMode=0700',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    // Its one privilege: ending the processes of a user IAM revoked (agent/end-sessions.ts).
    'CapabilityBoundingSet=CAP_KILL',
    'AmbientCapabilities=CAP_KILL',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
