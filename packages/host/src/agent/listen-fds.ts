/**
 * Sockets handed over by systemd socket activation (sd_listen_fds(3)): LISTEN_PID names the process they are for,
 * LISTEN_FDS how many there are (starting at fd 3), LISTEN_FDNAMES their FileDescriptorName= values separated by
 * ':'. The units (install/agent-units.ts) name them "userdb" and "keys", so the agent finds each by name whatever
 * order systemd passes them in. Variables meant for another process (a LISTEN_PID that is not ours) are ignored, as
 * sd_listen_fds does, and removed from the environment either way so children never inherit them.
 */
import { InputError } from '@keymaker/core';

/** The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

const VARIABLES = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/** Named sockets from systemd; empty when the process was not socket-activated. */
export function listenFds(env: NodeJS.ProcessEnv, pid: number): Map<string, number> {
  const pidText = env.LISTEN_PID;
  const countText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  for (const name of VARIABLES) delete env[name];
  const fds = new Map<string, number>();
  if (pidText === undefined || countText === undefined) return fds;
  if (!/^[0-9]+$/.test(pidText) || Number(pidText) !== pid) return fds;
  if (!/^[0-9]{1,4}$/.test(countText)) {
    throw new InputError('INVALID_ARGUMENT', `LISTEN_FDS=${JSON.stringify(countText)} is not a count of sockets`);
  }
  const count = Number(countText);
  const names = namesText === undefined ? [] : namesText.split(':');
  if (namesText !== undefined && names.length !== count) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `LISTEN_FDNAMES names ${names.length} sockets but LISTEN_FDS says ${count}; check the agent's .socket units`,
    );
  }
  for (let i = 0; i < count; i++) {
    // Without names, systemd calls each "unknown"; the agent then cannot tell its sockets apart.
    const name = names[i] ?? 'unknown';
    if (fds.has(name)) {
      throw new InputError('INVALID_ARGUMENT', `two sockets are named ${JSON.stringify(name)} in LISTEN_FDNAMES`);
    }
    fds.set(name, LISTEN_FDS_START + i);
  }
  return fds;
}
