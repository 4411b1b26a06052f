// Entry bundled by agent-userdb.e2e.test.ts and run inside the sandbox: the userdb service over an
// in-memory source, with names whose lookups never settle (a stuck IAM).
//   node server.mjs '{"users":[...],"groups":[...],"hang":["slowuser"],"deadlineMs":1000}'
import { MemoryIdentitySource, startUserdbService, type IdentitySource } from '../src/agent/userdb-service';
import type { ResolvedGroup, ResolvedUser } from '../src/agent/userdb-records';

interface Config {
  users: ResolvedUser[];
  groups: ResolvedGroup[];
  hang?: string[];
  deadlineMs?: number;
  serviceName?: string;
  onDeadline?: 'NoRecordFound' | 'ServiceNotAvailable';
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as Config;
  const memory = new MemoryIdentitySource({ users: config.users, groups: config.groups });
  const hang = new Set(config.hang ?? []);
  const never = <T>() => new Promise<T>(() => undefined);
  const source: IdentitySource = {
    lookupUser: (name) => (hang.has(name) ? never() : memory.lookupUser(name)),
    userByUid: (uid) => memory.userByUid(uid),
    group: (name) => (hang.has(name) ? never() : memory.group(name)),
    groupByGid: (gid) => memory.groupByGid(gid),
    groupsOfUser: (name) => (hang.has(name) ? never() : memory.groupsOfUser(name)),
    knownUsers: () => memory.knownUsers(),
    knownGroups: () => memory.knownGroups(),
  };
  const { socketPath } = await startUserdbService({
    source,
    serviceName: config.serviceName,
    deadlineMs: config.deadlineMs,
    onDeadline: config.onDeadline,
    log: (event) =>
      process.stderr.write(`${JSON.stringify(event, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`),
  });
  process.stdout.write(`READY ${socketPath}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`agent-e2e-server: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
