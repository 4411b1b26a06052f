/*
 * Agent mode's "really out" (issue 12): when IAM says a user is gone (deleted, renamed, out of the required
 * group, no active key), the agent stops resolving her and ends every process that runs as her UID — her SSH
 * sessions (sshd's per-session child runs as her), her shells, what she left running. Her files and home stay.
 *
 * The agent is unprivileged; the one privilege this needs is CAP_KILL, which its unit grants (and nothing
 * else). A process belongs to her when any of its real, effective, saved or filesystem UIDs is hers (a setuid
 * helper she started counts). Only IAM's definitive answers end processes: a failed or timed-out check never
 * does (those users expire from the cache on their own, and their sessions stay). The UID must also not be a
 * local account's: a derived UID that an /etc/passwd account holds is never touched.
 *
 * Ends in passes: a shell that forks while the first pass runs is caught by the next one.
 */
import type { RefusalReason } from './iam-identity-source';

/** Refusals that mean "IAM says this person has no access now" (not "IAM could not be asked"). */
export const ENDING_REFUSALS: ReadonlySet<RefusalReason> = new Set([
  'no-iam-user',
  'no-active-key',
  'not-in-required-group',
]);

/** UIDs below this are never ended, whatever the caller says (system accounts). */
const LOWEST_ENDABLE_UID = 1000;
const PASSES = 3;

/** The /proc and kill(2) the agent needs; tests pass a fake. */
export interface ProcessTable {
  /** Pids with their four UIDs (real, effective, saved, filesystem), read now. Unreadable entries are skipped. */
  list(): Promise<{ pid: number; uids: number[] }[]>;
  /** SIGKILL; false when the process is gone or may not be signalled. */
  kill(pid: number): boolean;
}

export interface EndResult {
  uid: number;
  ended: number;
  /** Processes still there after the last pass (kill refused: the agent lacks CAP_KILL). */
  left: number;
}

/** Ends every process of `uid`; refuses (throws) for a UID outside the managed ranges. */
export async function endProcessesOf(uid: number, table: ProcessTable, selfPid = process.pid): Promise<EndResult> {
  if (!Number.isInteger(uid) || uid < LOWEST_ENDABLE_UID || uid >= 0xffffffff)
    throw new RangeError(`uid ${uid} is not one keymaker's agent may end processes of`);
  let ended = 0;
  let left = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    const mine = (await table.list()).filter((p) => p.pid !== selfPid && p.uids.includes(uid));
    left = 0;
    if (mine.length === 0) break;
    for (const p of mine) {
      if (table.kill(p.pid)) ended++;
      else left++;
    }
  }
  return { uid, ended, left };
}

/** The real /proc: `Uid:` of /proc/PID/status holds the four UIDs. */
export function procProcessTable(fs: {
  readdir(dir: string): Promise<string[]>;
  readFile(file: string, encoding: 'utf8'): Promise<string>;
}): ProcessTable {
  return {
    async list() {
      const entries = (await fs.readdir('/proc')).filter((name) => /^[0-9]+$/.test(name));
      const rows = await Promise.all(
        entries.map(async (name) => {
          try {
            const status = await fs.readFile(`/proc/${name}/status`, 'utf8');
            const line = /^Uid:\s+(.*)$/m.exec(status)?.[1];
            if (!line) return undefined;
            return { pid: Number(name), uids: line.trim().split(/\s+/).map(Number) };
          } catch {
            return undefined; // exited meanwhile
          }
        }),
      );
      return rows.filter((row): row is { pid: number; uids: number[] } => row !== undefined);
    },
    kill(pid) {
      try {
        process.kill(pid, 'SIGKILL');
        return true;
      } catch {
        return false;
      }
    },
  };
}
