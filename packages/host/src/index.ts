// The public surface of @keymaker/host, chosen by hand: the commands sshd, PAM and the sync schedule
// run (what @keymaker/cli calls), install/uninstall, the host config, and the agent's userdb service.
// Everything else is internal. api/host.api.md records it; the test command fails when the two
// differ, so a change to the public API shows in review.

// Where keymaker's files live on a host, and the host config install writes.
export { DEFAULT_PATHS } from './system/paths';
export type { HostPaths } from './system/paths';
export { DEFAULT_HOST_CONFIG, parseHostConfig } from './config/host-config';
export type { HostConfig } from './config/host-config';
// The commands sshd, PAM and the schedule run, and the CLI's runs of them.
export {
  adoptLegacyAccountsCommand,
  getAuthorizedKeysCommand,
  pamCreateAccountCommand,
  pamEfsHomeCommand,
  storeKeyBodiesCommand,
  efsHomeFromRoleCommand,
  flushHostCommandSyslog,
  hostCommandSyslog,
  parseSyncArgs,
  syncGroupsCommand,
} from './commands/host-commands';
export type {
  AdoptCommandOptions,
  HostCommandEnv,
  HostCommandResult,
  HostCommandSyslog,
  SyncCommandOptions,
} from './commands/host-commands';
export { loadHostCliRuntime } from './commands/cli-runtime';
// keymaker status: read-only checks of this host (a pure planner over gathered facts).
export { assessStatus, formatStatusTable, gatherStatusFacts, statusCommand } from './commands/status';
export type {
  StatusCheck,
  StatusCheckId,
  StatusCheckState,
  StatusCommandOptions,
  StatusEnv,
  StatusError,
  StatusFacts,
  StatusItem,
  StatusReport,
} from './commands/status';
export type { HostCliRuntime, HostCliRuntimeOptions } from './commands/cli-runtime';
// keymaker install / uninstall: plan, then apply with one rollback.
export { nodeHostSystem } from './system/host-system';
export type { FileState, HostSystem, PathInfo, RunResult } from './system/host-system';
export { planInstall, planUninstall } from './install/plan';
export type {
  InstallOptions,
  InstallPlan,
  InstallPlanSummary,
  InstallSnapshot,
  NssSystemdInstaller,
  PlannedDir,
  UninstallPlan,
  PlannedFile,
} from './install/plan';
export type {
  CreateSystemUserStep,
  DisableServiceStep,
  EnableServiceStep,
  InstallStep,
  InstallStepKind,
  InstallStepSummary,
  MakeDirectoryStep,
  MatchProbe,
  ReloadServiceManagerStep,
  ReloadSshdStep,
  RemoveDirectoryStep,
  RemoveFileStep,
  RemoveSystemUserStep,
  RestoreAuthselectProfileStep,
  RestoreFileStep,
  SelectAuthselectProfileStep,
  ValidateStep,
  WriteFileStep,
  WriteJournalStep,
} from './install/steps';
export type { AuthselectProfilePlan, AuthselectState } from './install/authselect';
export type { InstallJournal, JournalDir, JournalFile, JournalOriginal } from './install/journal';
export type { SafePathTarget } from './system/root-owned';
export type { DropInInclude, SshdProbe } from './install/sshd-config';
export { runInstall, runUninstall } from './install/apply';
export { installOptionsFromFlags } from './install/install-flags';
export type { InstallFlags, InstallMachine } from './install/install-flags';
export type {
  InstallLog,
  InstallResult,
  InstallRunOptions,
  ReloadStrategy,
  SshdOptions,
  UninstallResult,
  UninstallRunOptions,
} from './install/apply';
// The agent (`keymaker agent`): NSS over systemd's userdb Varlink interface, sshd's keys, revocation.
export { agentCommand, DEFAULT_AGENT_REFRESH_SECONDS, DEFAULT_KEYS_SOCKET } from './agent/agent';
export type { AgentCommandOptions, AgentOptions } from './agent/agent';
// Users and groups for NSS over systemd's userdb Varlink interface.
export {
  DEFAULT_USERDB_SERVICE,
  MemoryIdentitySource,
  startUserdbService,
  USERDB_DIR,
  type IdentitySource,
  type ResolvedGroup,
  type ResolvedUser,
  type UserDatabaseOptions,
  type UserdbServiceOptions,
} from './agent/userdb-service';
export type {
  JsonObject,
  ListenTarget,
  VarlinkCall,
  VarlinkEvent,
  VarlinkHandler,
  VarlinkInfo,
  VarlinkInterface,
  VarlinkReply,
  VarlinkServer,
  VarlinkServerOptions,
} from './agent/varlink';
// The narrow interfaces the commands take their side effects through (a host, or a test).
export type { ProcessOptions, ProcessResult, RuntimeSystem } from './system/runtime-system';
export type { GroupEntry, LocalAccounts, LocalAdmin, NewAccount, PasswdEntry } from './accounts/local-accounts';
export type {
  ManagedAccount,
  ManagedAccountsStore,
  ManagedGroup,
  ManagedGroupsStore,
} from './accounts/managed-accounts';
export { MANAGED_USERS_GROUP } from './accounts/managed-accounts';
export type { LoginGuard } from './login/pam-guard';
export type { LoggerSyslogOptions, LogLevel, Syslog } from './system/syslog';
export type { PathStat, StatPath } from './system/root-owned';
// The host bundle's V8 code cache (the installed loader, install): trusted only when root wrote it for these bytes.
export {
  codeCacheKey,
  codeCachePath,
  decodeCodeCache,
  encodeCodeCache,
  loadBundle,
  makeCodeCache,
  nodeCodeCacheFs,
  readRootOwnedFile,
  readTrustedCodeCache,
  type CodeCacheFs,
  type CodeCacheStatus,
  type LoadedBundle,
  type TrustedCodeCache,
} from './system/code-cache';
// The loader's head start on the lookup's IAM connections (before the bundle loads).
export { preconnectFromHostConfig } from './config/preconnect';
export { LOOKUP_IAM_CONNECTIONS } from './config/host-aws';
