// The public surface of @keymaker/admin, chosen by hand: configure as a library (read, plan, apply)
// and the policy documents it writes. api/admin.api.md records it; the test command fails when the
// two differ, so a change to the public API shows in review.

// Options of keymaker configure, validated.
export {
  DEFAULT_ID_RESOLVER_IAM_ROLE,
  DEFAULT_INSTANCE_IAM_POLICY,
  DEFAULT_SELF_SERVICE_IAM_POLICY,
  parseConfigureOptions,
} from './options';
export type {
  ConfigureOptions,
  InstanceRoleRef,
  ProfileLookupEnv,
  RawConfigureOptions,
  SelfServiceOptions,
} from './options';
// What configure reads from IAM (read-only).
export { readConfigureState } from './state';
export type {
  AwsClients,
  ConfigureClients,
  ConfigureState,
  GroupState,
  InstanceProfileState,
  ManagedPolicyState,
  PolicyVersionState,
  RoleState,
} from './state';
// The plan: pure, typed steps.
export { formatPlan, planConfigure, planToJson } from './plan';
export type { Plan, PlanAction, PlanStep, Side, StepBase } from './plan';
// Applying a plan, and configure in one call.
export { applyPlan, configure } from './apply';
export type { ApplyOptions, ConfigureResult } from './apply';
// The whole command, as the CLI runs it.
export { createClientFactory, runConfigureCommand } from './command';
export type {
  ClientFactory,
  ClientFactoryConfig,
  CommandResult,
  ConfigureCommandEnv,
  ConfigureCommandOptions,
} from './command';
// The least-privilege policy documents.
export {
  IAM_READ_ACTIONS,
  ec2TrustPolicy,
  instancePolicyDocument,
  resolverPolicyDocument,
  resolverTrustPolicy,
  selfServicePolicyDocument,
} from './policies';
export type {
  InstancePolicyOptions,
  PolicyDocument,
  PolicyStatement,
  SelfServicePolicyOptions,
  StringOrList,
} from './policies';
