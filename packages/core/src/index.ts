// The public surface of @keymaker/core, chosen by hand: what @keymaker/host, @keymaker/admin,
// @keymaker/cli and embedders use. api/core.api.md records it; the test command fails when the
// two differ, so a change to the public API shows in review.

// One error hierarchy, its stable codes and exit codes.
export {
  AccessRefusedError,
  AwsError,
  DeadlineError,
  EXIT_CODES,
  HostError,
  InputError,
  KeymakerError,
  RoleConfigError,
  debugLines,
  describeError,
  errorForCode,
  errorMessage,
  exitCodeFor,
  failureOutput,
  firstLine,
  formatError,
  isKeymakerError,
  withFailureOutput,
} from './errors';
export type {
  AwsErrorCode,
  AwsRejectedInputCode,
  ErrorCode,
  ErrorReport,
  FailureOutput,
  HostErrorCode,
  InputErrorCode,
  KeymakerErrorOptions,
  RefusalCode,
} from './errors';
// Linux and IAM names.
export {
  assertLinuxUserName,
  assertNotReservedName,
  iamRoleNameProblem,
  isAccountId,
  isReservedLinuxName,
  isValidLinuxName,
  linuxNameOfIamGroup,
  linuxNameProblem,
  linuxUserNameForIamUser,
  parseArn,
  parseRoleArn,
  SUDO_LINUX_GROUP,
} from './names';
export type { ParsedArn } from './names';
// Names never given to an IAM user.
export { RESERVED_LINUX_NAMES } from './reserved-names';
// UIDs and GIDs from IAM unique IDs.
export { UID_SCHEMES, isInManagedRange, unixIdFor } from './uid';
export type { UidScheme } from './uid';
// The role-description tokens.
export {
  applyRoleConfigToDescription,
  assertValidRoleConfig,
  efsHomeProblem,
  parseEfsHome,
  parseRoleDescription,
  resolveRoleConfig,
  ROLE_CONFIG_TOKENS,
  roleConfigValueProblem,
} from './role-config';
export type { EfsHome, ResolvedRoleConfig, RoleConfig } from './role-config';
// SSH public key validation.
export { SSH_KEY_TYPES, parseSshPublicKey } from './ssh-key';
export type { SshKeyParseResult, SshKeyType, SshPublicKey } from './ssh-key';
// AWS clients: one place for region, timeouts and retries.
export { createIamClient, createStsClient } from './aws-clients';
export type { AwsClientOptions, CredentialProvider } from './aws-clients';
// Shared AWS config files (profiles).
export { awsProfileExists, explicitRegion, unknownProfileError } from './aws-config';
export type { AwsConfigLookup } from './aws-config';
// Deadlines that cancel.
export { createDeadline, withDeadline } from './deadline';
export type { Deadline, WithDeadlineOptions } from './deadline';
// AWS call plumbing shared with @keymaker/admin.
export { awsCall, collectPages, requireString, toAwsError, unexpectedAnswer } from './aws';
export type { AwsCallOptions, MissingEntity } from './aws';
export type { Page } from './aws';
// Which IAM directory a host resolves users in.
export {
  currentIamUserName,
  getCallerIdentity,
  loadInstanceConfig,
  resolveDirectory,
  resolverRoleArn,
} from './resolve';
export type {
  CacheStore,
  CallerIdentity,
  CallerKind,
  InstanceConfig,
  Resolution,
  ResolveOptions,
  TemporaryCredentials,
} from './resolve';
// The IAM directory: users, keys, groups.
export { IamDirectory } from './directory';
export type {
  AuthorizedKeys,
  FetchedKey,
  IamGroup,
  IamUser,
  LinuxGroup,
  LookupOptions,
  RejectedKey,
  SshKeySummary,
} from './directory';
// SSH public keys of IAM users.
export { deleteSshPublicKey, listSshPublicKeysDetailed, setSshPublicKeyStatus, uploadSshPublicKey } from './keys';
export type { KeyListing, UploadedKey } from './keys';
