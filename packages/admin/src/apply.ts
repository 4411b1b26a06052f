/*
 * Applies a configure plan (plan.ts) step by step with the client of each step's side, and retries what IAM's
 * eventual consistency refuses for a moment. All decisions were made by the planner; this file only calls IAM.
 */
import {
  AddRoleToInstanceProfileCommand,
  AttachGroupPolicyCommand,
  AttachRolePolicyCommand,
  CreateGroupCommand,
  CreateInstanceProfileCommand,
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  CreateRoleCommand,
  DeletePolicyVersionCommand,
  UpdateAssumeRolePolicyCommand,
  UpdateRoleDescriptionCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { AwsError, errorForCode, isKeymakerError } from '@keymaker/core';
import type { ConfigureOptions } from './options';
import { planConfigure, type Plan, type PlanStep } from './plan';
import { adminCall, readConfigureState, type ConfigureClients, type ConfigureState } from './state';

export interface ApplyOptions {
  /**
   * IAM is eventually consistent: a role created a moment ago can be refused
   * as a trust principal ("Invalid principal in policy"). Trust-policy steps
   * retry after these delays. Default: 2, 4, 8, 8 seconds.
   */
  principalRetryDelaysMs?: number[];
  sleep?: (ms: number) => Promise<void>;
  /** Called after each step that succeeded (for progress output). */
  onStep?: (step: PlanStep, index: number) => void;
}

const DEFAULT_PRINCIPAL_RETRY_DELAYS_MS = [2000, 4000, 8000, 8000];
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The SDK call a step makes; the operation name is what an AccessDenied error names. */
function runStep(iam: IAMClient, step: PlanStep): [operation: string, call: () => Promise<unknown>] {
  switch (step.action) {
    case 'createPolicy':
      return [
        'CreatePolicy',
        () =>
          iam.send(
            new CreatePolicyCommand({
              PolicyName: step.detail.policyName,
              PolicyDocument: JSON.stringify(step.detail.document),
              Description:
                step.detail.description ??
                'Keymaker: what EC2 instances need to resolve SSH logins from IAM (managed by keymaker configure)',
            }),
          ),
      ];
    case 'createPolicyVersion':
      return [
        'CreatePolicyVersion',
        () =>
          iam.send(
            new CreatePolicyVersionCommand({
              PolicyArn: step.detail.policyArn,
              PolicyDocument: JSON.stringify(step.detail.document),
              SetAsDefault: true,
            }),
          ),
      ];
    case 'deletePolicyVersion':
      return [
        'DeletePolicyVersion',
        () =>
          iam.send(
            new DeletePolicyVersionCommand({ PolicyArn: step.detail.policyArn, VersionId: step.detail.versionId }),
          ),
      ];
    case 'createRole':
      return [
        'CreateRole',
        () =>
          iam.send(
            new CreateRoleCommand({
              RoleName: step.detail.roleName,
              Path: step.detail.path,
              AssumeRolePolicyDocument: JSON.stringify(step.detail.trustPolicy),
            }),
          ),
      ];
    case 'updateAssumeRolePolicy':
      return [
        'UpdateAssumeRolePolicy',
        () =>
          iam.send(
            new UpdateAssumeRolePolicyCommand({
              RoleName: step.detail.roleName,
              PolicyDocument: JSON.stringify(step.detail.trustPolicy),
            }),
          ),
      ];
    case 'updateRoleDescription':
      return [
        'UpdateRoleDescription',
        () =>
          iam.send(
            new UpdateRoleDescriptionCommand({ RoleName: step.detail.roleName, Description: step.detail.description }),
          ),
      ];
    case 'createInstanceProfile':
      return [
        'CreateInstanceProfile',
        () =>
          iam.send(
            new CreateInstanceProfileCommand({
              InstanceProfileName: step.detail.instanceProfileName,
              Path: step.detail.path,
            }),
          ),
      ];
    case 'addRoleToInstanceProfile':
      return [
        'AddRoleToInstanceProfile',
        () =>
          iam.send(
            new AddRoleToInstanceProfileCommand({
              InstanceProfileName: step.detail.instanceProfileName,
              RoleName: step.detail.roleName,
            }),
          ),
      ];
    case 'attachRolePolicy':
      return [
        'AttachRolePolicy',
        () =>
          iam.send(new AttachRolePolicyCommand({ RoleName: step.detail.roleName, PolicyArn: step.detail.policyArn })),
      ];
    case 'createGroup':
      return ['CreateGroup', () => iam.send(new CreateGroupCommand({ GroupName: step.detail.groupName }))];
    case 'attachGroupPolicy':
      return [
        'AttachGroupPolicy',
        () =>
          iam.send(
            new AttachGroupPolicyCommand({ GroupName: step.detail.groupName, PolicyArn: step.detail.policyArn }),
          ),
      ];
  }
}

function isInvalidPrincipal(error: unknown): boolean {
  return (
    error instanceof AwsError &&
    error.awsCode?.replace(/Exception$/, '') === 'MalformedPolicyDocument' &&
    /principal/i.test(error.message)
  );
}

/** Which IAM client a step runs with. */
export function iamClientForSide(clients: ConfigureClients, plan: Plan, step: PlanStep): IAMClient {
  if (plan.crossAccount && step.side === 'instance') {
    if (!clients.crossAccount) throw new TypeError('a cross-account plan needs clients.crossAccount');
    return clients.crossAccount.iam;
  }
  return clients.iam;
}

/**
 * Makes the plan's changes, in order. Stops at the first failure and says how
 * far it got; every step is safe to plan again, so rerunning configure
 * finishes the job.
 */
export async function applyPlan(
  clients: ConfigureClients,
  plan: Plan,
  options: ApplyOptions = {},
): Promise<PlanStep[]> {
  const sleep = options.sleep ?? defaultSleep;
  const delays = options.principalRetryDelaysMs ?? DEFAULT_PRINCIPAL_RETRY_DELAYS_MS;
  const applied: PlanStep[] = [];
  for (const [index, step] of plan.steps.entries()) {
    const iam = iamClientForSide(clients, plan, step);
    const [operation, call] = runStep(iam, step);
    const retries = step.action === 'createRole' || step.action === 'updateAssumeRolePolicy' ? delays : [];
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await adminCall(operation, call);
          break;
        } catch (error) {
          if (attempt >= retries.length || !isInvalidPrincipal(error)) throw error;
          await sleep(retries[attempt]!);
        }
      }
    } catch (error) {
      throw withProgress(error, step, applied.length, plan.steps.length);
    }
    applied.push(step);
    options.onStep?.(step, index);
  }
  return applied;
}

function withProgress(error: unknown, step: PlanStep, done: number, total: number): unknown {
  if (!isKeymakerError(error)) return error;
  const note =
    done === 0 ? 'nothing was changed' : `${done} of ${total} changes were made; run configure again to finish`;
  const message = `${error.message} (at: ${step.summary}; ${note})`;
  const options = { cause: error, details: { ...error.details, failedStep: step.action, applied: done, total } };
  return error instanceof AwsError
    ? new AwsError(error.code, message, { ...options, awsCode: error.awsCode, operation: error.operation })
    : errorForCode(error.code, message, options);
}

export interface ConfigureResult {
  state: ConfigureState;
  plan: Plan;
  /** Steps made (empty on a dry run or when nothing had to change). */
  applied: PlanStep[];
  dryRun: boolean;
  changed: boolean;
}

/** Reads IAM, plans, and (unless dryRun) applies. */
export async function configure(
  clients: ConfigureClients,
  options: ConfigureOptions,
  run: { dryRun?: boolean } & ApplyOptions = {},
): Promise<ConfigureResult> {
  const state = await readConfigureState(clients, options);
  const plan = planConfigure(state, options);
  const dryRun = run.dryRun === true;
  const applied = dryRun ? [] : await applyPlan(clients, plan, run);
  return { state, plan, applied, dryRun, changed: applied.length > 0 };
}
