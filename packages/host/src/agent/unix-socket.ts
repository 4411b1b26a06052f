// Unix-socket housekeeping shared by the agent's servers (the userdb Varlink service and the keys server).
import * as fs from 'node:fs';
import * as net from 'node:net';

/** Removes a socket file nobody listens on (left by a killed agent); refuses a live one or a non-socket. */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`${socketPath}: another service is listening there`);
  fs.unlinkSync(socketPath);
}
