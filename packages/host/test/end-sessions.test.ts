import { expect } from '@jest/globals';
import { endProcessesOf, ENDING_REFUSALS, type ProcessTable } from '../src/agent/end-sessions';

/** A process table where some processes fork a child while being ended (a shell's job). */
function table(
  initial: { pid: number; uids: number[] }[],
  forks: Map<number, { pid: number; uids: number[] }> = new Map(),
) {
  const live = new Map(initial.map((p) => [p.pid, p]));
  const killed: number[] = [];
  const t: ProcessTable = {
    list: async () => [...live.values()],
    kill(pid) {
      if (!live.has(pid)) return false;
      live.delete(pid);
      killed.push(pid);
      const child = forks.get(pid);
      if (child) live.set(child.pid, child);
      return true;
    },
  };
  return { t, live, killed };
}

test('ends every process with her uid in any of the four slots, and no one else', async () => {
  const { t, live, killed } = table([
    { pid: 10, uids: [2000, 2000, 2000, 2000] }, // her shell
    { pid: 11, uids: [2000, 0, 0, 0] }, // a setuid helper she started
    { pid: 12, uids: [0, 0, 0, 0] }, // root
    { pid: 13, uids: [2001, 2001, 2001, 2001] }, // someone else
  ]);
  const result = await endProcessesOf(2000, t, 1);
  expect(result).toEqual({ uid: 2000, ended: 2, left: 0 });
  expect(killed.sort()).toEqual([10, 11]);
  expect([...live.keys()].sort()).toEqual([12, 13]);
});

test('a process forked while the first pass runs is ended by the next one', async () => {
  const { t, live } = table(
    [{ pid: 20, uids: [3000, 3000, 3000, 3000] }],
    new Map([[20, { pid: 21, uids: [3000, 3000, 3000, 3000] }]]),
  );
  const result = await endProcessesOf(3000, t, 1);
  expect(result.ended).toBe(2);
  expect(live.size).toBe(0);
});

test('processes that cannot be signalled are counted as left (no CAP_KILL)', async () => {
  const t: ProcessTable = { list: async () => [{ pid: 30, uids: [4000, 4000, 4000, 4000] }], kill: () => false };
  expect(await endProcessesOf(4000, t, 1)).toEqual({ uid: 4000, ended: 0, left: 1 });
});

test('never its own process, never a system uid', async () => {
  const { t, live } = table([{ pid: 40, uids: [5000, 5000, 5000, 5000] }]);
  await endProcessesOf(5000, t, 40);
  expect(live.has(40)).toBe(true);
  for (const uid of [0, 999, -1, 1.5, 0xffffffff]) await expect(endProcessesOf(uid, t, 1)).rejects.toThrow(RangeError);
});

test('only definitive IAM answers end processes; IAM failing or a local account never does', () => {
  expect([...ENDING_REFUSALS].sort()).toEqual(['no-active-key', 'no-iam-user', 'not-in-required-group']);
  for (const reason of ['local-account', 'local-check-failed', 'bad-iam-answer', 'uid-collision'] as const)
    expect(ENDING_REFUSALS.has(reason)).toBe(false);
});
