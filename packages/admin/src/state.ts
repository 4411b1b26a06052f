/*
 * Reads what IAM holds today (policy and its versions, roles, instance profile, the role description) so the
 * planner can compute the difference. Read-only; every failure is mapped to a KeymakerError naming the call.
 */
import {
  GetGroupCommand,
  GetInstanceProfileCommand,
  ListAttachedGroupPoliciesCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import {
  InputError,
  collectPages,
  getCallerIdentity,
  isKeymakerError,
  parseArn,
  requireString,
  awsCall,
  toAwsError,
  unexpectedAnswer,
  type CallerIdentity,
  type KeymakerError,
} from '@keymaker/core';
import type { ConfigureOptions } from './options';
import { profileNotFound } from './options';
import { parsePolicyDocument } from './policies';

export interface AwsClients {
  iam: IAMClient;
  sts: STSClient;
}

/**
 * `iam`/`sts`: the current credentials. Single-account they act on the
 * instance role's account; cross-account they act on the ID-resolver account.
 * `crossAccount`: credentials in the instance role's account (from
 * --cross-account-profile), needed only when the role ARN is in another account.
 */
export interface ConfigureClients extends AwsClients {
  crossAccount?: AwsClients;
}

export interface PolicyVersionState {
  versionId: string;
  isDefault: boolean;
  /** ISO 8601; absent when IAM did not say. */
  createDate?: string;
}

export interface ManagedPolicyState {
  name: string;
  arn: string;
  exists: boolean;
  defaultVersionId?: string;
  /** The default version's document, decoded; undefined when unreadable. */
  defaultDocument?: Record<string, unknown>;
  versions: PolicyVersionState[];
}

export interface RoleState {
  name: string;
  /** The ARN the role has (when it exists) or will have. */
  arn: string;
  /** The path it has or will be created with. */
  path: string;
  exists: boolean;
  description?: string;
  trustPolicy?: Record<string, unknown>;
  attachedPolicyArns: string[];
}

export interface InstanceProfileState {
  name: string;
  exists: boolean;
  roleNames: string[];
}

export interface GroupState {
  name: string;
  exists: boolean;
  attachedPolicyArns: string[];
}

export interface ConfigureState {
  /** Who runs configure (the current credentials). */
  caller: CallerIdentity;
  partition: string;
  crossAccount: boolean;
  instance: {
    accountId: string;
    policy: ManagedPolicyState;
    role: RoleState;
    instanceProfile: InstanceProfileState;
  };
  /** Present when cross-account: the current account, which resolves IDs. */
  resolver?: {
    accountId: string;
    policy: ManagedPolicyState;
    role: RoleState;
  };
  /** --self-service-group: the group and its policy, in the account of the IAM users (the current credentials'). */
  selfService?: {
    accountId: string;
    group: GroupState;
    policy: ManagedPolicyState;
  };
}

const PROFILE_MISSING = /Could not resolve credentials using profile: \[([^\]]*)\]/;

/** Maps an SDK failure like core's awsCall, but names a missing profile. */
export function toAdminError(error: unknown, operation: string): KeymakerError {
  const raw = (error as { message?: unknown } | undefined)?.message;
  // Only a text message can name the profile.
  const message = typeof raw === 'string' ? raw : '';
  const profile = PROFILE_MISSING.exec(message);
  if (profile) return profileNotFound(profile[1]!);
  return toAwsError(error, operation);
}

/** awsCall with the admin's mapping (a missing profile named). */
export function adminCall<T>(operation: string, call: () => Promise<T>): Promise<T> {
  return awsCall(operation, call, { classify: toAdminError });
}

async function missingIsUndefined<T>(operation: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await adminCall(operation, call);
  } catch (error) {
    if (isKeymakerError(error, 'NO_SUCH_ENTITY')) return undefined;
    throw error;
  }
}

export function policyArn(partition: string, accountId: string, name: string): string {
  return `arn:${partition}:iam::${accountId}:policy/${name}`;
}

export function roleArn(partition: string, accountId: string, name: string, path = '/'): string {
  return `arn:${partition}:iam::${accountId}:role${path}${name}`;
}

export async function readManagedPolicy(iam: IAMClient, arn: string, name: string): Promise<ManagedPolicyState> {
  const got = await missingIsUndefined('GetPolicy', () => iam.send(new GetPolicyCommand({ PolicyArn: arn })));
  if (!got) return { name, arn, exists: false, versions: [] };
  if (!got.Policy) throw unexpectedAnswer('GetPolicy', 'no Policy');
  const versions = await collectPages('ListPolicyVersions', async (marker) => {
    const out = await adminCall('ListPolicyVersions', () =>
      iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn, Marker: marker })),
    );
    return {
      items: (out.Versions ?? []).map((v) => ({
        versionId: requireString(v.VersionId, 'ListPolicyVersions', 'VersionId'),
        isDefault: v.IsDefaultVersion === true,
        ...(v.CreateDate ? { createDate: new Date(v.CreateDate).toISOString() } : {}),
      })),
      isTruncated: out.IsTruncated,
      marker: out.Marker,
    };
  });
  const defaultVersionId = got.Policy.DefaultVersionId ?? versions.find((v) => v.isDefault)?.versionId;
  let defaultDocument: Record<string, unknown> | undefined;
  if (defaultVersionId) {
    const version = await adminCall('GetPolicyVersion', () =>
      iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: defaultVersionId })),
    );
    defaultDocument = parsePolicyDocument(version.PolicyVersion?.Document);
  }
  return {
    name,
    arn,
    exists: true,
    versions,
    ...(defaultVersionId ? { defaultVersionId } : {}),
    ...(defaultDocument ? { defaultDocument } : {}),
  };
}

export async function readRole(iam: IAMClient, name: string, expectedArn: string, path: string): Promise<RoleState> {
  const got = await missingIsUndefined('GetRole', () => iam.send(new GetRoleCommand({ RoleName: name })));
  if (!got) return { name, arn: expectedArn, path, exists: false, attachedPolicyArns: [] };
  const role = got.Role;
  if (!role) throw unexpectedAnswer('GetRole', 'no Role');
  const attachedPolicyArns = await collectPages('ListAttachedRolePolicies', async (marker) => {
    const out = await adminCall('ListAttachedRolePolicies', () =>
      iam.send(new ListAttachedRolePoliciesCommand({ RoleName: name, Marker: marker })),
    );
    return {
      items: (out.AttachedPolicies ?? []).map((p) =>
        requireString(p.PolicyArn, 'ListAttachedRolePolicies', 'PolicyArn'),
      ),
      isTruncated: out.IsTruncated,
      marker: out.Marker,
    };
  });
  const state: RoleState = {
    name,
    arn: requireString(role.Arn, 'GetRole', 'Arn'),
    path: role.Path ?? '/',
    exists: true,
    attachedPolicyArns,
  };
  if (typeof role.Description === 'string') state.description = role.Description;
  const trust = parsePolicyDocument(role.AssumeRolePolicyDocument);
  if (trust) state.trustPolicy = trust;
  return state;
}

export async function readInstanceProfile(iam: IAMClient, name: string): Promise<InstanceProfileState> {
  const got = await missingIsUndefined('GetInstanceProfile', () =>
    iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name })),
  );
  if (!got) return { name, exists: false, roleNames: [] };
  const roles = got.InstanceProfile?.Roles ?? [];
  return {
    name,
    exists: true,
    roleNames: roles.map((r) => requireString(r.RoleName, 'GetInstanceProfile', 'RoleName')),
  };
}

export async function readGroup(iam: IAMClient, name: string): Promise<GroupState> {
  const got = await missingIsUndefined('GetGroup', () => iam.send(new GetGroupCommand({ GroupName: name })));
  if (!got) return { name, exists: false, attachedPolicyArns: [] };
  const attachedPolicyArns = await collectPages('ListAttachedGroupPolicies', async (marker) => {
    const out = await adminCall('ListAttachedGroupPolicies', () =>
      iam.send(new ListAttachedGroupPoliciesCommand({ GroupName: name, Marker: marker })),
    );
    return {
      items: (out.AttachedPolicies ?? []).map((p) =>
        requireString(p.PolicyArn, 'ListAttachedGroupPolicies', 'PolicyArn'),
      ),
      isTruncated: out.IsTruncated,
      marker: out.Marker,
    };
  });
  return { name, exists: true, attachedPolicyArns };
}

function partitionOf(caller: CallerIdentity): string {
  return parseArn(caller.arn)?.partition ?? 'aws';
}

/**
 * Reads everything configure may change, with read-only calls only. Fails
 * before any change when the accounts do not line up with the options.
 */
export async function readConfigureState(
  clients: ConfigureClients,
  options: ConfigureOptions,
): Promise<ConfigureState> {
  const caller = await getCallerIdentityNamed(clients.sts);
  const partition = partitionOf(caller);
  const ref = options.instanceRole;
  if (ref.partition && ref.partition !== partition) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `--instance-iam-role ${ref.arn} is in partition ${ref.partition} but your credentials are in ${partition}; use credentials for ${ref.partition}`,
    );
  }
  const instanceAccount = ref.accountId ?? caller.accountId;
  const crossAccount = instanceAccount !== caller.accountId;

  let instanceClients: AwsClients = clients;
  if (crossAccount) {
    if (!clients.crossAccount || options.crossAccountProfile === undefined) {
      throw new InputError(
        'INVALID_ARGUMENT',
        `--instance-iam-role ${ref.arn} is in account ${instanceAccount}, not in ${caller.accountId} where you are signed in; pass --cross-account-profile naming a profile for account ${instanceAccount}`,
      );
    }
    const other = await getCallerIdentityNamed(clients.crossAccount.sts);
    if (other.accountId !== instanceAccount) {
      throw new InputError(
        'INVALID_ARGUMENT',
        `--cross-account-profile ${options.crossAccountProfile} signs in to account ${other.accountId}, but the instance role is in account ${instanceAccount}; pass a profile for account ${instanceAccount}`,
      );
    }
    instanceClients = clients.crossAccount;
  } else if (options.crossAccountProfile !== undefined) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `--cross-account-profile ${options.crossAccountProfile} is only for an --instance-iam-role ARN in another account, and ${ref.arn ?? ref.name} is in the current account ${caller.accountId}; drop the option or pass the role's ARN`,
    );
  }

  const expectedInstanceArn = ref.arn ?? roleArn(partition, instanceAccount, ref.name, ref.path);
  const instanceIamPolicyArn = policyArn(partition, instanceAccount, options.instanceIamPolicy);
  const [policy, role, instanceProfile] = await Promise.all([
    readManagedPolicy(instanceClients.iam, instanceIamPolicyArn, options.instanceIamPolicy),
    readRole(instanceClients.iam, ref.name, expectedInstanceArn, ref.path),
    readInstanceProfile(instanceClients.iam, ref.name),
  ]);
  const state: ConfigureState = {
    caller,
    partition,
    crossAccount,
    instance: { accountId: instanceAccount, policy, role, instanceProfile },
  };
  if (crossAccount) {
    const resolverAccount = caller.accountId;
    const [resolverPolicy, resolverRole] = await Promise.all([
      readManagedPolicy(
        clients.iam,
        policyArn(partition, resolverAccount, options.instanceIamPolicy),
        options.instanceIamPolicy,
      ),
      readRole(
        clients.iam,
        options.idResolverIamRole,
        roleArn(partition, resolverAccount, options.idResolverIamRole),
        '/',
      ),
    ]);
    state.resolver = { accountId: resolverAccount, policy: resolverPolicy, role: resolverRole };
  }
  if (options.selfService) {
    // The IAM users are in the current account (single-account, or the ID-resolver account).
    const { group, policyName } = options.selfService;
    const [groupState, policyState] = await Promise.all([
      readGroup(clients.iam, group),
      readManagedPolicy(clients.iam, policyArn(partition, caller.accountId, policyName), policyName),
    ]);
    state.selfService = { accountId: caller.accountId, group: groupState, policy: policyState };
  }
  return state;
}

async function getCallerIdentityNamed(sts: STSClient): Promise<CallerIdentity> {
  try {
    return await getCallerIdentity(sts);
  } catch (error) {
    // core maps through awsCall; recover the profile name when the SDK gave one.
    const cause = (error as { cause?: unknown }).cause;
    throw cause ? toAdminError(cause, 'GetCallerIdentity') : error;
  }
}
