// io.systemd.UserDatabase over a narrow IdentitySource: the agent's NSS face. libnss-systemd connects
// to /run/systemd/userdb/<service> itself (no systemd-userdbd, no systemd as PID 1 needed) and asks:
//   getpwnam -> GetUserRecord{userName}   getpwuid -> GetUserRecord{uid}   getspnam -> GetUserRecord
//   getgrnam/getgrgid -> GetGroupRecord{groupName|gid} + GetMemberships{groupName}
//   initgroups -> GetMemberships{userName}
// Enumeration (`more` with no key) returns only what the source already knows, never all of IAM.
// Every call is answered within the server's deadline (varlink.ts); a source that has no answer in
// time gets `onDeadline` (ServiceNotAvailable by default) and may finish in the background.
import * as path from 'node:path';
import { isValidLinuxName } from '@keymaker/core';
import {
  groupRecord,
  isValidUnixId,
  membershipsOfGroup,
  membershipsOfUser,
  privateGroupOf,
  recordReply,
  userRecord,
  type MembershipRecord,
  type ResolvedGroup,
  type ResolvedUser,
} from './userdb-records';
import {
  DEFAULT_DEADLINE_MS,
  VARLINK_ERRORS,
  VarlinkError,
  VarlinkServer,
  errorReply,
  type VarlinkCall,
  type VarlinkEvent,
  type VarlinkInterface,
  type VarlinkReply,
} from './varlink';

export type { ResolvedGroup, ResolvedUser } from './userdb-records';

export const USERDB_INTERFACE = 'io.systemd.UserDatabase';
export const USERDB_DIR = '/run/systemd/userdb';
export const DEFAULT_USERDB_SERVICE = 'io.keymaker.agent';

export const USERDB_ERRORS = {
  noRecordFound: 'io.systemd.UserDatabase.NoRecordFound',
  conflictingRecordFound: 'io.systemd.UserDatabase.ConflictingRecordFound',
  badService: 'io.systemd.UserDatabase.BadService',
  enumerationNotSupported: 'io.systemd.UserDatabase.EnumerationNotSupported',
  serviceNotAvailable: 'io.systemd.UserDatabase.ServiceNotAvailable',
} as const;

/**
 * Where identities come from. Lookups may be slow (IAM) and may never settle: the service never
 * waits past its deadline; `signal` aborts when the caller stopped waiting. `undefined` = no such
 * user/group here. The known* methods answer from memory only (enumeration).
 */
export interface IdentitySource {
  lookupUser(name: string, signal?: AbortSignal): Promise<ResolvedUser | undefined>;
  userByUid(uid: number, signal?: AbortSignal): Promise<ResolvedUser | undefined>;
  group(name: string, signal?: AbortSignal): Promise<ResolvedGroup | undefined>;
  groupByGid(gid: number, signal?: AbortSignal): Promise<ResolvedGroup | undefined>;
  /** Names of the groups (served by this source) the user belongs to; undefined for an unknown user. */
  groupsOfUser(name: string, signal?: AbortSignal): Promise<readonly string[] | undefined>;
  knownUsers(): readonly ResolvedUser[];
  knownGroups(): readonly ResolvedGroup[];
}

export interface UserDatabaseOptions {
  /** The socket's file name, a reverse-DNS name; the `service` parameter must equal it. */
  serviceName?: string;
  /** Serve each user's private group (name = user name, GID = primary GID = UID). Default true. */
  privateGroups?: boolean;
  /** The reply when the source misses the deadline. Default ServiceNotAvailable. */
  onDeadline?: 'NoRecordFound' | 'ServiceNotAvailable';
  /** Called when the source fails or gives a record that cannot be served. */
  log?: (event: VarlinkEvent | { type: 'bad-record'; error: unknown }) => void;
}

const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i;

export function assertServiceName(name: string): string {
  if (!SERVICE_NAME.test(name) || name.length > 100)
    throw new TypeError(`invalid userdb service name ${JSON.stringify(name)} (a reverse-DNS name)`);
  return name;
}

function invalid(parameter: string): VarlinkError {
  return new VarlinkError(VARLINK_ERRORS.invalidParameter, { parameter });
}
const notFound = () => new VarlinkError(USERDB_ERRORS.noRecordFound);

interface Keys {
  name?: string;
  id?: number;
}

/** Validates parameters: only the given keys, each of the right type; service must match. */
function readParameters(
  call: VarlinkCall,
  serviceName: string,
  nameKey: string,
  idKey?: string,
  otherNameKey?: string,
): Keys & { other?: string } {
  const allowed = new Set(['service', nameKey, ...(idKey ? [idKey] : []), ...(otherNameKey ? [otherNameKey] : [])]);
  for (const key of Object.keys(call.parameters)) if (!allowed.has(key)) throw invalid(key);
  const p = call.parameters;
  const name = p[nameKey];
  if (name !== undefined && name !== null && typeof name !== 'string') throw invalid(nameKey);
  const other = otherNameKey ? p[otherNameKey] : undefined;
  if (other !== undefined && other !== null && typeof other !== 'string') throw invalid(otherNameKey!);
  const id = idKey ? p[idKey] : undefined;
  if (id !== undefined && id !== null && !isValidUnixId(id)) throw invalid(idKey!);
  if (p.service !== serviceName) throw new VarlinkError(USERDB_ERRORS.badService);
  return {
    name: typeof name === 'string' ? name : undefined,
    id: typeof id === 'number' ? id : undefined,
    other: typeof other === 'string' ? other : undefined,
  };
}

/**
 * One source lookup per key at a time, shared by every call that asks meanwhile. One NSS operation
 * makes several calls for the same name one after another (getgrnam: GetGroupRecord, then
 * GetMemberships), so once a lookup has missed a call's deadline, later calls for that key are
 * answered at once (`missed`) while it finishes in the background: a stuck source costs one
 * deadline per NSS operation, not one per call. The source's signal aborts when every waiter gave up.
 */
export class InFlightLookups {
  private readonly flights = new Map<
    string,
    { promise: Promise<unknown>; missed: boolean; waiters: number; controller: AbortController }
  >();

  constructor(private readonly missed: () => Error) {}

  run<T>(key: string, signal: AbortSignal | undefined, start: (signal: AbortSignal) => Promise<T>): Promise<T> {
    let flight = this.flights.get(key);
    if (flight?.missed) return Promise.reject(this.missed());
    if (!flight) {
      const controller = new AbortController();
      const entry = { promise: Promise.resolve() as Promise<unknown>, missed: false, waiters: 0, controller };
      entry.promise = (async () => start(controller.signal))().finally(() => {
        if (this.flights.get(key) === entry) this.flights.delete(key);
      });
      entry.promise.catch(() => undefined);
      this.flights.set(key, entry);
      flight = entry;
    }
    const current = flight;
    current.waiters++;
    signal?.addEventListener(
      'abort',
      () => {
        current.missed = true;
        if (--current.waiters === 0) current.controller.abort();
      },
      { once: true },
    );
    return current.promise as Promise<T>;
  }

  get size(): number {
    return this.flights.size;
  }
}

/** The source seen through InFlightLookups (same interface). */
function sharedLookups(source: IdentitySource, missed: () => Error): IdentitySource {
  const flights = new InFlightLookups(missed);
  return {
    lookupUser: (name, signal) => flights.run(`user:${name}`, signal, (s) => source.lookupUser(name, s)),
    userByUid: (uid, signal) => flights.run(`uid:${uid}`, signal, (s) => source.userByUid(uid, s)),
    group: (name, signal) => flights.run(`group:${name}`, signal, (s) => source.group(name, s)),
    groupByGid: (gid, signal) => flights.run(`gid:${gid}`, signal, (s) => source.groupByGid(gid, s)),
    groupsOfUser: (name, signal) => flights.run(`memberof:${name}`, signal, (s) => source.groupsOfUser(name, s)),
    knownUsers: () => source.knownUsers(),
    knownGroups: () => source.knownGroups(),
  };
}

/** The io.systemd.UserDatabase interface over a source, for a VarlinkServer. */
export function userDatabaseInterface(backing: IdentitySource, options: UserDatabaseOptions = {}): VarlinkInterface {
  const service = assertServiceName(options.serviceName ?? DEFAULT_USERDB_SERVICE);
  const privateGroups = options.privateGroups ?? true;
  const deadlineError =
    options.onDeadline === 'NoRecordFound' ? USERDB_ERRORS.noRecordFound : USERDB_ERRORS.serviceNotAvailable;
  const source = sharedLookups(backing, () => new VarlinkError(deadlineError));

  const userReply = (user: ResolvedUser): VarlinkReply => ({ parameters: recordReply(userRecord(user, service)) });
  const groupReply = (group: ResolvedGroup): VarlinkReply => ({ parameters: recordReply(groupRecord(group, service)) });
  const membershipReplies = (records: MembershipRecord[]): VarlinkReply[] => {
    if (records.length === 0) throw notFound();
    return records.map((record) => ({ parameters: { ...record } }));
  };
  const enumeration = (call: VarlinkCall): void => {
    if (!call.more) throw new VarlinkError(VARLINK_ERRORS.expectedMore);
  };

  const knownGroups = (): ResolvedGroup[] => {
    const groups = [...source.knownGroups()];
    if (privateGroups) {
      const taken = new Set(groups.flatMap((g) => [`n:${g.linuxName}`, `g:${g.gid}`]));
      for (const user of source.knownUsers()) {
        if (user.gid === user.uid && !taken.has(`n:${user.linuxName}`) && !taken.has(`g:${user.gid}`))
          groups.push(privateGroupOf(user));
      }
    }
    return groups;
  };

  async function groupByName(name: string, signal: AbortSignal): Promise<ResolvedGroup | undefined> {
    const group = await source.group(name, signal);
    if (group || !privateGroups) return group;
    const user = await source.lookupUser(name, signal);
    return user && user.gid === user.uid ? privateGroupOf(user) : undefined;
  }

  async function groupById(gid: number, signal: AbortSignal): Promise<ResolvedGroup | undefined> {
    const group = await source.groupByGid(gid, signal);
    if (group || !privateGroups) return group;
    const user = await source.userByUid(gid, signal);
    return user && user.gid === gid ? privateGroupOf(user) : undefined;
  }

  return {
    name: USERDB_INTERFACE,
    description: USERDB_IDL,
    failure(_call, reason, cause) {
      if (reason === 'error') options.log?.({ type: 'bad-record', error: cause });
      return errorReply(reason === 'deadline' ? deadlineError : USERDB_ERRORS.serviceNotAvailable);
    },
    methods: {
      async GetUserRecord(call, signal) {
        const { name, id } = readParameters(call, service, 'userName', 'uid');
        if (id !== undefined) {
          const user = await source.userByUid(id, signal);
          if (!user) throw notFound();
          if (name !== undefined && user.linuxName !== name)
            throw new VarlinkError(USERDB_ERRORS.conflictingRecordFound);
          return [userReply(user)];
        }
        if (name !== undefined) {
          if (!isValidLinuxName(name)) throw notFound();
          const user = await source.lookupUser(name, signal);
          if (!user) throw notFound();
          return [userReply(user)];
        }
        enumeration(call);
        const users = source.knownUsers();
        if (users.length === 0) throw notFound();
        return users.map(userReply);
      },

      async GetGroupRecord(call, signal) {
        const { name, id } = readParameters(call, service, 'groupName', 'gid');
        if (id !== undefined) {
          const group = await groupById(id, signal);
          if (!group) throw notFound();
          if (name !== undefined && group.linuxName !== name)
            throw new VarlinkError(USERDB_ERRORS.conflictingRecordFound);
          return [groupReply(group)];
        }
        if (name !== undefined) {
          if (!isValidLinuxName(name)) throw notFound();
          const group = await groupByName(name, signal);
          if (!group) throw notFound();
          return [groupReply(group)];
        }
        enumeration(call);
        const groups = knownGroups();
        if (groups.length === 0) throw notFound();
        return groups.map(groupReply);
      },

      async GetMemberships(call, signal) {
        const { name: userName, other: groupName } = readParameters(call, service, 'userName', undefined, 'groupName');
        if (
          (userName !== undefined && !isValidLinuxName(userName)) ||
          (groupName !== undefined && !isValidLinuxName(groupName))
        )
          throw notFound();
        if (userName !== undefined && groupName !== undefined) {
          const group = await groupByName(groupName, signal);
          if (!group?.members.includes(userName)) throw notFound();
          return [{ parameters: { userName, groupName } }];
        }
        enumeration(call);
        if (userName !== undefined)
          return membershipReplies(membershipsOfUser(userName, (await source.groupsOfUser(userName, signal)) ?? []));
        if (groupName !== undefined) {
          const group = await groupByName(groupName, signal);
          return membershipReplies(group ? membershipsOfGroup(group) : []);
        }
        return membershipReplies(knownGroups().flatMap(membershipsOfGroup));
      },
    },
  };
}

export interface UserdbServiceOptions extends UserDatabaseOptions {
  source: IdentitySource;
  /** Default /run/systemd/userdb. */
  directory?: string;
  /** Listen on an inherited fd (socket activation) instead of creating the socket. */
  fd?: number;
  /** Per-call deadline, at most 1 s by design. Default 1000 ms. */
  deadlineMs?: number;
  version?: string;
}

/** Starts the userdb service: socket `<directory>/<serviceName>`, mode 0666. Close it with `server.close()`. */
export async function startUserdbService(
  options: UserdbServiceOptions,
): Promise<{ server: VarlinkServer; socketPath?: string }> {
  const serviceName = assertServiceName(options.serviceName ?? DEFAULT_USERDB_SERVICE);
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  if (deadlineMs > 1000)
    throw new RangeError('the userdb deadline must be at most 1000 ms (libnss-systemd callers block meanwhile)');
  const server = new VarlinkServer({
    info: {
      vendor: 'Keymaker',
      product: 'keymaker agent',
      version: options.version ?? '0.1.0',
      url: 'https://github.com/keymaker-ts/keymaker',
    },
    interfaces: [userDatabaseInterface(options.source, { ...options, serviceName })],
    deadlineMs,
    log: options.log,
  });
  if (options.fd !== undefined) {
    await server.listen({ fd: options.fd });
    return { server };
  }
  const socketPath = path.join(options.directory ?? USERDB_DIR, serviceName);
  await server.listen({ path: socketPath, mode: 0o666 });
  return { server, socketPath };
}

/** An IdentitySource over fixed users and groups: for tests and demos (everything is "known"). */
export class MemoryIdentitySource implements IdentitySource {
  users: ResolvedUser[];
  groups: ResolvedGroup[];

  constructor(init: { users?: ResolvedUser[]; groups?: ResolvedGroup[] } = {}) {
    this.users = [...(init.users ?? [])];
    this.groups = [...(init.groups ?? [])];
  }

  async lookupUser(name: string) {
    return this.users.find((u) => u.linuxName === name);
  }
  async userByUid(uid: number) {
    return this.users.find((u) => u.uid === uid);
  }
  async group(name: string) {
    return this.groups.find((g) => g.linuxName === name);
  }
  async groupByGid(gid: number) {
    return this.groups.find((g) => g.gid === gid);
  }
  async groupsOfUser(name: string) {
    if (!this.users.some((u) => u.linuxName === name)) return undefined;
    return this.groups.filter((g) => g.members.includes(name)).map((g) => g.linuxName);
  }
  knownUsers() {
    return this.users;
  }
  knownGroups() {
    return this.groups;
  }
}

// From systemd's src/shared/varlink-io.systemd.UserDatabase.c (the subset this service implements).
const USERDB_IDL = `interface io.systemd.UserDatabase

method GetUserRecord(uid: ?int, userName: ?string, service: string) -> (record: object, incomplete: bool)
method GetGroupRecord(gid: ?int, groupName: ?string, service: string) -> (record: object, incomplete: bool)
method GetMemberships(userName: ?string, groupName: ?string, service: string) -> (userName: string, groupName: string)

error NoRecordFound()
error BadService()
error ServiceNotAvailable()
error ConflictingRecordFound()
error EnumerationNotSupported()
`;
