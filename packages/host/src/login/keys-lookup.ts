/*
 * The AuthorizedKeysCommand: what sshd runs at every login. It prints one
 * authorized_keys line per active, valid IAM key and exits 0, or prints
 * nothing and exits non-zero. It never prints a partial answer.
 *
 * Which logins keymaker answers for (the managed check), in order:
 *  1. the name is a valid Linux name and not a reserved one (a system or
 *     package service account, core's list plus the host config's
 *     reservedNames), else no lookup, no IAM call;
 *  2. a local account of that name either does not exist (a JIT account to
 *     be), or has a UID inside a keymaker range (checked before any AWS call
 *     against every scheme's range, then against the configured scheme);
 *  3. an existing account is in keymaker's record of the accounts it manages
 *     (managed-accounts.ts) with the same name and UID, checked before any AWS
 *     call: keymaker created it, or an administrator adopted it. A matching
 *     UID alone is not enough: under the legacy scheme an IAM user re-created
 *     ~32,000 times derives any UID of the range, a hand-made account's too.
 *     A record another user could change, or one that does not parse, means
 *     no existing account is managed (fail closed);
 *  4. for an existing account, its UID equals the UID derived from the IAM
 *     user's unique ID, and that unique ID is the one recorded. This keeps
 *     root, system accounts and pre-existing local users (ubuntu, ec2-user,
 *     a legacy-range local user) out of IAM's reach even when an IAM user of
 *     the same name exists, and refuses an IAM user that was deleted and
 *     re-created under the same name (new unique ID) the old account's home.
 */
import {
  AccessRefusedError,
  assertLinuxUserName,
  assertNotReservedName,
  DeadlineError,
  exitCodeFor,
  errorMessage,
  isInManagedRange,
  isKeymakerError,
  UID_SCHEMES,
  withDeadline,
  type Deadline,
  type Resolution,
  type SshPublicKey,
  type UidScheme,
} from '@keymaker/core';
import type { LocalAccounts, PasswdEntry } from '../accounts/local-accounts';
import type { LookupGuard } from './lookup-guard';
import { recordedAccount, type ManagedAccount } from '../accounts/managed-accounts';
import type { Syslog } from '../system/syslog';

export interface LookupRequest {
  /** The Linux login name sshd passes as %u. */
  user: string;
  /** The offered key's fingerprint (%f), for the log only. */
  fingerprint?: string;
}

export interface LookupDeps {
  accounts: LocalAccounts;
  /** Finds the IAM directory (instance role config, ID-resolver role). */
  resolve: () => Promise<Resolution>;
  /** Names the host reserves on top of core's list (host config reservedNames). */
  reservedNames?: readonly string[];
  /** The per-name cache and limit (lookup-guard.ts): it may only refuse, never grant. */
  guard?: LookupGuard;
  /** keymaker's record of the accounts it manages; absent: none (no existing account is served). */
  managedAccounts?: () => Promise<readonly ManagedAccount[]>;
  /**
   * Compat mode's stored key bodies of an IAM user by key ID (key-body-store.ts, written by root, validated on
   * read): a body here replaces the GetSSHPublicKey of a key the live list names as Active. Read only; a
   * failure reads as none.
   */
  keyBodies?: (iamUserName: string) => Promise<ReadonlyMap<string, SshPublicKey>>;
}

export interface LookupDecision {
  lines: string[];
  /** The SHA256 fingerprints of the printed keys. */
  fingerprints: string[];
  iamUserName: string;
  /** Set when a local account already exists. */
  uid?: number;
  rejected: number;
  /** Active keys whose body came from the stored bodies, and those fetched from IAM. */
  cachedBodies: number;
  fetchedBodies: number;
}

export interface LookupIo {
  write(text: string): void;
}

export const DEFAULT_LOOKUP_DEADLINE_MS = 5000;

function inAnyManagedRange(uid: number): boolean {
  return UID_SCHEMES.some((scheme) => isInManagedRange(uid, scheme));
}

function notManaged(message: string, details: Record<string, unknown>): AccessRefusedError {
  return new AccessRefusedError('NOT_MANAGED', message, { details });
}

/** Refuses a local account keymaker does not manage; callable before any AWS call (scheme undefined). */
export function assertManagedAccount(local: PasswdEntry, scheme?: UidScheme): void {
  const ok = scheme ? isInManagedRange(local.uid, scheme) : inAnyManagedRange(local.uid);
  if (!ok) {
    throw notManaged(
      `local account ${local.name} (uid ${local.uid}) is not managed by keymaker${scheme ? ` (outside the ${scheme} UID range)` : ''}`,
      {
        uid: local.uid,
      },
    );
  }
}

/** The record entry of an existing account, or NOT_MANAGED (before any AWS call). */
async function assertRecordedAccount(local: PasswdEntry, deps: LookupDeps): Promise<ManagedAccount> {
  let records: readonly ManagedAccount[];
  try {
    records = (await deps.managedAccounts?.()) ?? [];
  } catch (error) {
    // An unsafe or unreadable record: nothing is managed.
    throw notManaged(
      `keymaker's record of managed accounts cannot be used, so no existing account is served: ${(error as Error).message}`,
      {
        uid: local.uid,
        record: 'unusable',
      },
    );
  }
  const recorded = recordedAccount(records, local);
  if (!recorded) {
    throw notManaged(
      `local account ${local.name} (uid ${local.uid}) is not in keymaker's record of managed accounts: keymaker did not create it and no administrator adopted it (keymaker install --adopt-legacy-accounts)`,
      { uid: local.uid },
    );
  }
  if (recorded.locked) {
    // Locked by the sync (its IAM user is gone): no keys until the same IAM user is back and a sync unlocks it.
    throw notManaged(
      `local account ${local.name} (uid ${local.uid}) is locked: its IAM user (${recorded.iamUserId}) is gone or not allowed on this host; the next sync unlocks it if she is back`,
      { uid: local.uid, locked: true },
    );
  }
  return recorded;
}

export async function lookupAuthorizedKeys(request: LookupRequest, deps: LookupDeps): Promise<LookupDecision> {
  const name = assertNotReservedName(assertLinuxUserName(request.user), deps.reservedNames);
  const local = await deps.accounts.user(name);
  if (local) assertManagedAccount(local);
  const recorded = local ? await assertRecordedAccount(local, deps) : undefined;
  await guardBefore(deps.guard, name, request.fingerprint);
  const { directory, config } = await deps.resolve();
  if (local) assertManagedAccount(local, config.uidScheme);
  let result: Awaited<ReturnType<typeof directory.authorizedKeys>>;
  try {
    // The stored bodies are read while the key list is in flight: they are needed only once it is back.
    const known = deps.keyBodies?.(directory.iamUserNameFor(name)).catch(() => undefined);
    result = await directory.authorizedKeys(name, {
      includeUser: local !== undefined,
      knownBody: known && (async (_iamUserName, keyId) => (await known)?.get(keyId)),
    });
    if (local) {
      const derived = directory.uidFor(result.user!);
      if (derived !== local.uid) {
        throw notManaged(
          `local account ${name} has uid ${local.uid} but IAM user ${result.iamUserName} (${result.user!.userId}) derives uid ${derived}: not the same person`,
          { uid: local.uid, derivedUid: derived },
        );
      }
      if (recorded && recorded.iamUserId !== result.user!.userId) {
        throw notManaged(
          `local account ${name} (uid ${local.uid}) was recorded for IAM user ID ${recorded.iamUserId}, but IAM user ${result.iamUserName} is ${result.user!.userId} (deleted and re-created?): not the same person`,
          { uid: local.uid, recordedIamUserId: recorded.iamUserId },
        );
      }
    }
  } catch (error) {
    await deps.guard?.after(name, { error }).catch(() => undefined);
    throw error;
  }
  await deps.guard?.after(name, { fingerprints: result.keys.map((key) => key.fingerprint) }).catch(() => undefined);
  return {
    lines: result.keys.map((key) => key.line),
    fingerprints: result.keys.map((key) => key.fingerprint),
    iamUserName: result.iamUserName,
    uid: local?.uid,
    rejected: result.rejected.length,
    cachedBodies: result.knownBodies,
    fetchedBodies: result.fetched.length,
  };
}

/** The guard's refusals stand; its own failures (I/O) only cost the cache: the lookup goes on live. */
async function guardBefore(
  guard: LookupGuard | undefined,
  name: string,
  fingerprint: string | undefined,
): Promise<void> {
  try {
    await guard?.before(name, fingerprint);
  } catch (error) {
    if (isKeymakerError(error) && (error.details.cached || error.details.rateLimited)) throw error;
  }
}

export interface RunLookupOptions {
  /** Or built for the lookup's deadline: clients and commands that get its signal, so its end cancels them. */
  deps: LookupDeps | ((deadline: Deadline) => LookupDeps);
  syslog: Syslog;
  /** Hard overall deadline; default 5 s. */
  deadlineMs?: number;
}

/** Why a login was refused, as one log token. */
function reasonOf(error: unknown): string {
  if (!isKeymakerError(error)) return 'INTERNAL';
  if (error.details.cached) return `${error.code} cached=yes`;
  if (error.details.rateLimited) return 'RATE_LIMITED';
  return error.code;
}

/** Runs a lookup under a hard deadline, logs the decision; resolves to the process exit code. */
export async function runLookup(request: LookupRequest, io: LookupIo, options: RunLookupOptions): Promise<number> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_LOOKUP_DEADLINE_MS;
  const fp = request.fingerprint ?? '-';
  // The user name is logged as JSON so odd bytes in it cannot fake fields.
  const who = `user=${JSON.stringify(request.user)} fingerprint=${fp}`;
  try {
    const decision = await withDeadline(
      deadlineMs,
      (_signal, deadline) =>
        lookupAuthorizedKeys(request, typeof options.deps === 'function' ? options.deps(deadline) : options.deps),
      () => new DeadlineError(`lookup did not finish within ${deadlineMs} ms`),
    );
    // One write: either every line or nothing reaches sshd.
    if (decision.lines.length > 0) io.write(`${decision.lines.join('\n')}\n`);
    const match = request.fingerprint
      ? ` offered_key_listed=${decision.fingerprints.includes(request.fingerprint) ? 'yes' : 'no'}`
      : '';
    const reason = decision.lines.length > 0 ? 'iam_keys' : 'no_active_keys';
    options.syslog.log(
      'info',
      `lookup ${who} decision=keys reason=${reason} iam_user=${decision.iamUserName} keys=${decision.lines.length} rejected_keys=${decision.rejected} cached_bodies=${decision.cachedBodies} fetched_bodies=${decision.fetchedBodies}${match}`,
    );
    return 0;
  } catch (error) {
    options.syslog.log('warning', `lookup ${who} decision=refused reason=${reasonOf(error)}: ${errorMessage(error)}`);
    return exitCodeFor(error);
  }
}
