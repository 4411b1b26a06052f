import { AwsError, InputError, applyRoleConfigToDescription, type RoleConfig } from '@keymaker/core';
import { roleConfigFor, type ConfigureOptions } from './options';
import {
  ASSUME_ROLE_ACTION,
  EC2_SERVICE_PRINCIPAL,
  ec2TrustPolicy,
  instancePolicyDocument,
  policiesEqual,
  resolverPolicyDocument,
  resolverTrustPolicy,
  selfServicePolicyDocument,
  trustPolicyAllows,
  withTrustStatement,
  type PolicyDocument,
} from './policies';
import type { ConfigureState, ManagedPolicyState, RoleState } from './state';

/** Which credentials a step runs with: the instance role's account, or the ID-resolver (current) account. */
export type Side = 'instance' | 'resolver';

export const IAM_POLICY_VERSION_LIMIT = 5;

export interface StepBase {
  side: Side;
  /** 12-digit account the step changes. */
  account: string;
  /** ARN (or name, for instance profiles) of what the step changes. */
  target: string;
  /** One line for people. */
  summary: string;
}

export type PlanStep = StepBase &
  (
    | {
        action: 'createPolicy';
        /** description: what IAM shows for the policy; absent for the instance policy (apply.ts's text). */
        detail: { policyName: string; document: PolicyDocument; description?: string };
      }
    | {
        action: 'createPolicyVersion';
        detail: { policyArn: string; document: PolicyDocument; setAsDefault: true; replacesVersionId?: string };
      }
    | { action: 'deletePolicyVersion'; detail: { policyArn: string; versionId: string } }
    | { action: 'createRole'; detail: { roleName: string; path: string; trustPolicy: PolicyDocument } }
    | { action: 'updateAssumeRolePolicy'; detail: { roleName: string; trustPolicy: Record<string, unknown> } }
    | {
        action: 'updateRoleDescription';
        detail: { roleName: string; description: string; previousDescription: string };
      }
    | { action: 'createInstanceProfile'; detail: { instanceProfileName: string; path: string } }
    | { action: 'addRoleToInstanceProfile'; detail: { instanceProfileName: string; roleName: string } }
    | { action: 'attachRolePolicy'; detail: { roleName: string; policyArn: string } }
    | { action: 'createGroup'; detail: { groupName: string } }
    | { action: 'attachGroupPolicy'; detail: { groupName: string; policyArn: string } }
  );

export type PlanAction = PlanStep['action'];

export interface Plan {
  crossAccount: boolean;
  accounts: { instance: string; resolver?: string };
  instanceRoleArn: string;
  resolverRoleArn?: string;
  /** Managed policy ARNs, per side, and the self-service policy's. */
  policyArns: { instance: string; resolver?: string; selfService?: string };
  /** The keymaker_* tokens the instance role's description carries after the plan. */
  config: RoleConfig;
  /** In order; empty when IAM already matches the options. */
  steps: PlanStep[];
}

type StepInput = Omit<StepBase, 'side' | 'account'>;

/** Oldest first by creation date, then by version number (v1 < v2 < v10). */
function oldestNonDefault(policy: ManagedPolicyState): string | undefined {
  const candidates = policy.versions.filter((v) => !v.isDefault && v.versionId !== policy.defaultVersionId);
  const num = (id: string) => Number(/^v(\d+)$/.exec(id)?.[1] ?? Number.MAX_SAFE_INTEGER);
  candidates.sort((a, b) => {
    const byDate = (a.createDate ?? '').localeCompare(b.createDate ?? '');
    return byDate !== 0 ? byDate : num(a.versionId) - num(b.versionId);
  });
  return candidates[0]?.versionId;
}

class StepList {
  readonly steps: PlanStep[] = [];
  constructor(private readonly accounts: Record<Side, string>) {}
  add(side: Side, step: StepInput & Pick<PlanStep, 'action' | 'detail'>): void {
    this.steps.push({ side, account: this.accounts[side], ...step } as PlanStep);
  }
}

function policySteps(
  list: StepList,
  side: Side,
  account: string,
  policy: ManagedPolicyState,
  document: PolicyDocument,
  description?: string,
): void {
  if (!policy.exists) {
    list.add(side, {
      action: 'createPolicy',
      target: policy.arn,
      summary: `create managed policy ${policy.name} in account ${account}`,
      detail: { policyName: policy.name, document, ...(description ? { description } : {}) },
    });
    return;
  }
  if (policy.defaultDocument && policiesEqual(policy.defaultDocument, document)) return;
  if (policy.versions.length >= IAM_POLICY_VERSION_LIMIT) {
    const oldest = oldestNonDefault(policy);
    if (!oldest) {
      throw new AwsError(
        'LIMIT_EXCEEDED',
        `policy ${policy.arn} has ${policy.versions.length} versions and none can be deleted; delete one by hand`,
      );
    }
    list.add(side, {
      action: 'deletePolicyVersion',
      target: policy.arn,
      summary: `delete version ${oldest} of policy ${policy.name} in account ${account} (IAM keeps at most ${IAM_POLICY_VERSION_LIMIT}; it is the oldest non-default one)`,
      detail: { policyArn: policy.arn, versionId: oldest },
    });
  }
  list.add(side, {
    action: 'createPolicyVersion',
    target: policy.arn,
    summary: `add a new default version of policy ${policy.name} in account ${account} (its document differs${policy.defaultVersionId ? ` from ${policy.defaultVersionId}` : ''})`,
    detail: {
      policyArn: policy.arn,
      document,
      setAsDefault: true,
      ...(policy.defaultVersionId ? { replacesVersionId: policy.defaultVersionId } : {}),
    },
  });
}

function roleSteps(
  list: StepList,
  side: Side,
  account: string,
  role: RoleState,
  trustPolicy: PolicyDocument,
  principal: { Service: string } | { AWS: string },
  principalText: string,
): void {
  if (!role.exists) {
    list.add(side, {
      action: 'createRole',
      target: role.arn,
      summary: `create role ${role.name} in account ${account}, trusted by ${principalText}`,
      detail: { roleName: role.name, path: role.path, trustPolicy },
    });
    return;
  }
  if (!trustPolicyAllows(role.trustPolicy, principal)) {
    list.add(side, {
      action: 'updateAssumeRolePolicy',
      target: role.arn,
      summary: `let ${principalText} assume role ${role.name} in account ${account} (other trust statements are kept)`,
      detail: {
        roleName: role.name,
        trustPolicy: withTrustStatement(role.trustPolicy, {
          Effect: 'Allow',
          Principal: principal,
          Action: ASSUME_ROLE_ACTION,
        }),
      },
    });
  }
}

function attachStep(list: StepList, side: Side, account: string, role: RoleState, policy: ManagedPolicyState): void {
  if (role.exists && role.attachedPolicyArns.includes(policy.arn)) return;
  list.add(side, {
    action: 'attachRolePolicy',
    target: role.arn,
    summary: `attach policy ${policy.name} to role ${role.name} in account ${account}`,
    detail: { roleName: role.name, policyArn: policy.arn },
  });
}

/**
 * --self-service-group: the policy letting each member manage only her own SSH keys (policies.ts), created or
 * brought to the wanted document, the group created when missing, and the policy attached to it. Runs with the
 * current credentials: the account of the IAM users.
 */
function selfServiceSteps(list: StepList, state: ConfigureState, requireMfa: boolean): void {
  const { accountId, group, policy } = state.selfService!;
  const side: Side = state.crossAccount ? 'resolver' : 'instance';
  const document = selfServicePolicyDocument({ partition: state.partition, accountId, requireMfa });
  const description = `Keymaker: members of ${group.name} manage only their own SSH keys${requireMfa ? ' (uploads need MFA)' : ''} (managed by keymaker configure)`;
  policySteps(list, side, accountId, policy, document, description);
  if (!group.exists) {
    list.add(side, {
      action: 'createGroup',
      target: `arn:${state.partition}:iam::${accountId}:group/${group.name}`,
      summary: `create IAM group ${group.name} in account ${accountId}`,
      detail: { groupName: group.name },
    });
  }
  if (group.attachedPolicyArns.includes(policy.arn)) return;
  list.add(side, {
    action: 'attachGroupPolicy',
    target: `arn:${state.partition}:iam::${accountId}:group/${group.name}`,
    summary: `attach policy ${policy.name} to IAM group ${group.name} in account ${accountId} (its members manage only their own SSH keys${requireMfa ? ', uploads with MFA' : ', uploads without MFA (--no-mfa)'})`,
    detail: { groupName: group.name, policyArn: policy.arn },
  });
}

/**
 * Pure: the changes that bring IAM from `state` to what `options` ask for.
 * Throws (and so changes nothing) when the state conflicts with the options.
 *
 * Order matters: policies before the roles they are attached to, the
 * instance role before the resolver role that trusts it (IAM refuses a trust
 * principal that does not exist), and the role description last, so hosts
 * only see a configuration once everything it names exists.
 */
export function planConfigure(state: ConfigureState, options: ConfigureOptions): Plan {
  const { instance, resolver } = state;
  const ref = options.instanceRole;
  if (state.crossAccount !== Boolean(resolver))
    throw new TypeError('state.resolver must be present exactly when crossAccount');

  if (instance.role.exists && ref.arn && instance.role.arn !== ref.arn) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `--instance-iam-role ${ref.arn}: the role ${ref.name} exists as ${instance.role.arn}; pass that ARN`,
    );
  }
  const instanceRoleArn = instance.role.arn;
  let resolverRoleArn: string | undefined;
  if (resolver) {
    // keymaker_id_resolver_iam_role holds a name; hosts build the ARN with the root path.
    if (resolver.role.exists && resolver.role.path !== '/') {
      throw new InputError(
        'INVALID_ARGUMENT',
        `--id-resolver-iam-role ${resolver.role.name}: the role exists with path ${resolver.role.path}, but hosts assume it at path /; pass a role name without a path`,
      );
    }
    resolverRoleArn = resolver.role.arn;
  }

  const config = roleConfigFor(
    options,
    resolver ? { accountId: resolver.accountId, roleName: resolver.role.name } : undefined,
  );
  const previousDescription = instance.role.description ?? '';
  const description = applyRoleConfigToDescription(previousDescription, config);

  const profile = instance.instanceProfile;
  if (profile.exists && !profile.roleNames.includes(ref.name) && profile.roleNames.length > 0) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `instance profile ${profile.name} already holds role ${profile.roleNames.join(', ')} and an instance profile holds only one role; remove that role from it or pick another --instance-iam-role`,
    );
  }

  const list = new StepList({ instance: instance.accountId, resolver: resolver?.accountId ?? instance.accountId });
  if (resolver) policySteps(list, 'resolver', resolver.accountId, resolver.policy, resolverPolicyDocument());
  policySteps(
    list,
    'instance',
    instance.accountId,
    instance.policy,
    instancePolicyDocument(resolverRoleArn ? { resolverRoleArn } : {}),
  );
  roleSteps(
    list,
    'instance',
    instance.accountId,
    instance.role,
    ec2TrustPolicy(),
    { Service: EC2_SERVICE_PRINCIPAL },
    EC2_SERVICE_PRINCIPAL,
  );
  if (!profile.exists) {
    list.add('instance', {
      action: 'createInstanceProfile',
      target: profile.name,
      summary: `create instance profile ${profile.name} in account ${instance.accountId}`,
      detail: { instanceProfileName: profile.name, path: instance.role.path },
    });
  }
  if (!profile.roleNames.includes(ref.name)) {
    list.add('instance', {
      action: 'addRoleToInstanceProfile',
      target: profile.name,
      summary: `add role ${ref.name} to instance profile ${profile.name}`,
      detail: { instanceProfileName: profile.name, roleName: ref.name },
    });
  }
  attachStep(list, 'instance', instance.accountId, instance.role, instance.policy);
  if (resolver) {
    roleSteps(
      list,
      'resolver',
      resolver.accountId,
      resolver.role,
      resolverTrustPolicy(instanceRoleArn),
      { AWS: instanceRoleArn },
      instanceRoleArn,
    );
    attachStep(list, 'resolver', resolver.accountId, resolver.role, resolver.policy);
  }
  if (state.selfService && options.selfService) selfServiceSteps(list, state, options.selfService.requireMfa);
  if (description !== previousDescription) {
    list.add('instance', {
      action: 'updateRoleDescription',
      target: instanceRoleArn,
      summary: `set the description of role ${ref.name} to ${JSON.stringify(description)}`,
      detail: { roleName: ref.name, description, previousDescription },
    });
  }

  return {
    crossAccount: state.crossAccount,
    accounts: { instance: instance.accountId, ...(resolver ? { resolver: resolver.accountId } : {}) },
    instanceRoleArn,
    ...(resolverRoleArn ? { resolverRoleArn } : {}),
    policyArns: {
      instance: instance.policy.arn,
      ...(resolver ? { resolver: resolver.policy.arn } : {}),
      ...(state.selfService ? { selfService: state.selfService.policy.arn } : {}),
    },
    config,
    steps: list.steps,
  };
}

/** The plan for people: a header and one line per step (or "nothing to change"). */
export function formatPlan(plan: Plan, options: { dryRun?: boolean } = {}): string[] {
  const where = plan.crossAccount
    ? `instance role ${plan.instanceRoleArn} (account ${plan.accounts.instance}), ID resolver ${plan.resolverRoleArn} (account ${plan.accounts.resolver})`
    : `instance role ${plan.instanceRoleArn} (account ${plan.accounts.instance})`;
  const lines = [`keymaker configure: ${where}`];
  if (plan.steps.length === 0) {
    lines.push('nothing to change: IAM already matches these options');
    return lines;
  }
  lines.push(
    options.dryRun
      ? `plan (dry run, nothing was changed): ${plan.steps.length} change(s)`
      : `plan: ${plan.steps.length} change(s)`,
  );
  plan.steps.forEach((step, i) => lines.push(`  ${i + 1}. ${step.summary}`));
  return lines;
}

/** A plain-data copy of the plan for --json (documents stay objects). */
export function planToJson(plan: Plan): Record<string, unknown> {
  return JSON.parse(JSON.stringify(plan)) as Record<string, unknown>;
}
