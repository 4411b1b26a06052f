// The steps install is made of: each a typed change the planner (plan.ts) decides and lists, whose undo
// the applier (apply-steps.ts) keeps until the run succeeds. A new kind of change (an nsswitch edit, a
// systemd socket unit, a PAM session line, a detached agent) is a new member of InstallStep, a case in
// performStep (step-handlers.ts) and a line in describeStep; the applier itself does not change.
import type { AuthselectProfilePlan } from './authselect';
import type { FileState } from '../system/host-system';
import type { InstallJournal } from './journal';
import type { SafePathTarget } from '../system/root-owned';
import type { DropInInclude, SshdProbe } from './sshd-config';

/** A check that changes nothing; the ones before the first change also run in --dry-run. */
export type ValidateStep =
  | { kind: 'validate'; check: 'safePaths'; targets: SafePathTarget[] }
  | {
      kind: 'validate';
      /** sshd -t and -T on a temp copy of the configuration keymaker is about to switch to. */
      check: 'sshdCandidate';
      mainText: string;
      dropIn?: { content: Buffer; include: DropInInclude };
      sshdConfigDirEntries: string[];
      user: string;
      authenticationMethods: string;
      /** What the candidate must not weaken, probe by probe. */
      baseline: { probe: SshdProbe; settings: Map<string, string> }[];
      /** The effective settings sshd -T must show; default compat mode's (expectedEffectiveSettings). */
      expected?: Record<string, string>;
    }
  | { kind: 'validate'; check: 'cronSyntax'; path: string; content: string }
  /** sshd -t and -T on the live files, after the switch and before the reload. */
  | {
      kind: 'validate';
      check: 'sshdLive';
      user: string;
      authenticationMethods: string;
      expected?: Record<string, string>;
    }
  /**
   * Both modes: `sshd -T -C user=NAME` shows AuthorizedKeysFile none for a managed user, and for a local
   * one what it was without keymaker (`expect`, from the baseline at `spec`), or at least not none (issue 12).
   */
  | { kind: 'validate'; check: 'sshdMatch'; probes: MatchProbe[] }
  /** Uninstall: sshd -t on the live files with keymaker's settings taken out, before the reload. */
  | { kind: 'validate'; check: 'sshdWithoutKeymaker' }
  /** visudo -cf on a dotted temp copy of the sudoers drop-in keymaker is about to switch to (sudoers.ts). */
  | { kind: 'validate'; check: 'sudoersCandidate'; visudo: string; path: string; content: Buffer }
  /** visudo -c on the live sudo policy, after the switch: a failure rolls the install back. */
  | { kind: 'validate'; check: 'sudoersLive'; visudo: string; path: string };

export interface CreateSystemUserStep {
  kind: 'createSystemUser';
  name: string;
  shell: string;
  comment: string;
}

export interface MakeDirectoryStep {
  kind: 'makeDirectory';
  path: string;
  mode: number;
  owner: string;
  group: string;
}

/** Writes the install state (journal.ts); it names what a crashed run may have changed, before it changes. */
export interface WriteJournalStep {
  kind: 'writeJournal';
  /** progress: uninstall's, shrinking as each file is restored, so a stopped uninstall resumes. */
  stage: 'intent' | 'final' | 'progress';
  journal: InstallJournal;
}

export interface WriteFileStep {
  kind: 'writeFile';
  path: string;
  content: Buffer;
  mode: number;
  owner: string;
  group: string;
  purpose: string;
  /** Somebody else's file (sshd_config, pam.d/sshd): a symlink to it is written through, not replaced. */
  writeThrough: boolean;
  /** Whether the file existed (for the log line). */
  existed: boolean;
}

/** A file an earlier install wrote that this one does not: back to what the journal says it was. */
export interface RestoreFileStep {
  kind: 'restoreFile';
  path: string;
  /** undefined: remove it. */
  target: FileState | undefined;
  writeThrough: boolean;
  /** Why, for the log line ("no longer used"). */
  reason?: string;
  note?: string;
}

export interface EnableServiceStep {
  kind: 'enableService';
  unit: string;
  /** Enabled by an earlier install already: a rollback leaves it enabled. */
  wasEnabled: boolean;
}

export interface DisableServiceStep {
  kind: 'disableService';
  unit: string;
}

export interface ReloadSshdStep {
  kind: 'reloadSshd';
}

/** systemctl daemon-reload, after unit files went away. */
export interface ReloadServiceManagerStep {
  kind: 'reloadServiceManager';
}

export interface RemoveFileStep {
  kind: 'removeFile';
  path: string;
}

/** A directory install created; one that is not keymaker's alone is left, with a warning. */
export interface RemoveDirectoryStep {
  kind: 'removeDirectory';
  path: string;
  /** With its contents (keymaker's own cache). */
  recursive: boolean;
}

/** The lookup user install created; a failure is a warning (remove it by hand). */
export interface RemoveSystemUserStep {
  kind: 'removeSystemUser';
  name: string;
}

/**
 * Agent mode without systemd as PID 1: `keymaker agent` started detached as `user`, its pid in pidFile. Root
 * makes both sockets as the .socket units would and passes them at fd 3 and 4 (agent-launcher.ts). Nothing
 * restarts it; install says so.
 */
export interface StartAgentStep {
  kind: 'startAgent';
  /** node, the host bundle, `agent --config PATH`. */
  command: string[];
  /** The unprivileged user (and its group) the agent runs as. */
  user: string;
  /** setpriv (util-linux), which drops to `user` keeping CAP_KILL. */
  setpriv: string;
  /** The userdb socket NSS connects to (0666 root:root, like keymaker-agent.socket). */
  userdbSocket: string;
  /** The group whose members may connect to the keys socket (the AuthorizedKeysCommandUser's). */
  keysSocketGroup: string;
  /** The keys socket (0660 root:keysSocketGroup): install waits until it answers. */
  keysSocket: string;
  pidFile: string;
  logFile: string;
  /** NODE_EXTRA_CA_CERTS for the agent: the one variable of install's environment it keeps (agent-launcher.ts). */
  extraCaCerts?: string;
}

/**
 * Agent mode on a host without libnss-systemd: the system package manager installs it (argv, e.g. apt-get install).
 * Not undone on a rollback, nor by uninstall (which says so): a package that only adds an NSS module does nothing
 * until nsswitch names it, and removing a package is the administrator's call.
 */
export interface InstallPackageStep {
  kind: 'installPackage';
  package: string;
  argv: string[];
  /**
   * Put back as they were once the package is in: its maintainer scripts edit them (libnss-systemd's postinst adds
   * systemd to four nsswitch lines), and the plan's own edit of the same file, journaled, must apply to the bytes
   * it read, so a rollback and uninstall give back the original.
   */
  keepFiles: string[];
}

/** authselect owns nsswitch.conf: create custom/keymaker with systemd on the three lines and select it (authselect.ts). */
export interface SelectAuthselectProfileStep {
  kind: 'selectAuthselectProfile';
  profile: AuthselectProfilePlan;
}

/** Uninstall: select the profile install found, with its features, and remove the custom profile. */
export interface RestoreAuthselectProfileStep {
  kind: 'restoreAuthselectProfile';
  previous: { profile: string; features: string[]; custom: string };
}

/** Stops the detached agent named by its pid file (a stale pid file is removed). */
export interface StopAgentStep {
  kind: 'stopAgent';
  pidFile: string;
  /** The detached agent's output file, removed once it stopped (so uninstall leaves no keymaker state behind). */
  logFile?: string;
  /** The sockets the launcher made for it, removed once it stopped (nothing else removes them). */
  sockets?: string[];
}

/** Without systemd: `mount MOUNTPOINT` from keymaker's fstab line (the EFS home share); undone by umount. */
export interface MountFilesystemStep {
  kind: 'mountFilesystem';
  mountPoint: string;
}

/** Uninstall without systemd: `umount MOUNTPOINT` when something is mounted there; a busy share is a warning. */
export interface UnmountFilesystemStep {
  kind: 'unmountFilesystem';
  mountPoint: string;
}

/** One connection the sshdMatch check asks `sshd -T -C` about. */
export interface MatchProbe {
  user: string;
  managed: boolean;
  /** The -C argument (default: user=USER with a fixed host and address). */
  spec?: string;
  /** A local user's AuthorizedKeysFile as it was without keymaker. */
  expect?: string;
}

export type InstallStep =
  | ValidateStep
  | CreateSystemUserStep
  | MakeDirectoryStep
  | WriteJournalStep
  | WriteFileStep
  | RestoreFileStep
  | EnableServiceStep
  | DisableServiceStep
  | ReloadSshdStep
  | ReloadServiceManagerStep
  | RemoveFileStep
  | RemoveDirectoryStep
  | RemoveSystemUserStep
  | StartAgentStep
  | StopAgentStep
  | MountFilesystemStep
  | UnmountFilesystemStep
  | InstallPackageStep
  | SelectAuthselectProfileStep
  | RestoreAuthselectProfileStep;

export type InstallStepKind = InstallStep['kind'];

/** Whether the step changes the machine (the dry run stops before the first that does). */
export const changesMachine = (step: InstallStep): boolean => step.kind !== 'validate';

const VALIDATIONS: Record<ValidateStep['check'], string> = {
  safePaths: "check sshd's safe-path rule on what sshd, PAM and the schedule run or read",
  sshdCandidate:
    "check the sshd configuration with keymaker's settings (sshd -t, sshd -T, never weaker authentication)",
  cronSyntax: 'check the group sync cron schedule (crontab -n)',
  sshdLive: 'check the live sshd configuration (sshd -t, sshd -T)',
  sshdWithoutKeymaker: "check the sshd configuration without keymaker's settings (sshd -t)",
  sshdMatch:
    'check that AuthorizedKeysFile is none for a keymaker account and unchanged for a local one (sshd -T -C user=...)',
  sudoersCandidate: "check keymaker's sudoers drop-in (visudo -cf on a copy)",
  sudoersLive: 'check the live sudo policy (visudo -c)',
};

const octal = (mode: number) => mode.toString(8).padStart(4, '0');

/** One line for people: what the step does. */
export function describeStep(step: InstallStep): string {
  switch (step.kind) {
    case 'validate':
      return VALIDATIONS[step.check];
    case 'selectAuthselectProfile':
      return `authselect: create the profile custom/${step.profile.name} from ${step.profile.baseOn} with systemd on ${step.profile.changed.join(', ')} and select it${step.profile.features.length > 0 ? ` (features ${step.profile.features.join(' ')})` : ''}`;
    case 'restoreAuthselectProfile':
      return `authselect: select ${step.previous.profile}${step.previous.features.length > 0 ? ` ${step.previous.features.join(' ')}` : ''} again and remove the profile custom/${step.previous.custom}`;
    case 'installPackage':
      return `install the package ${step.package} (${step.argv.join(' ')}); uninstall leaves it`;
    case 'createSystemUser':
      return `create the locked system user ${step.name} (shell ${step.shell}, no home)`;
    case 'makeDirectory':
      return `create the directory ${step.path} (${octal(step.mode)} ${step.owner}:${step.group})`;
    case 'writeJournal':
      return step.stage === 'intent'
        ? 'write the install state (what uninstall undoes), before the files change'
        : step.stage === 'final'
          ? 'write the final install state'
          : `write the install state (${step.journal.files.length} file(s) left to restore)`;
    case 'writeFile':
      return `${step.existed ? 'update' : 'write'} ${step.path} (${octal(step.mode)} ${step.owner}:${step.group}, ${step.content.length} bytes): ${step.purpose}`;
    case 'restoreFile':
      return `${step.target ? 'restore' : 'remove'} ${step.path}${step.reason ? ` (${step.reason})` : ''}`;
    case 'enableService':
      return `enable and start ${step.unit} (systemctl daemon-reload; systemctl enable --now)`;
    case 'disableService':
      return `disable and stop ${step.unit} (systemctl disable --now)`;
    case 'reloadSshd':
      return 'reload sshd';
    case 'reloadServiceManager':
      return 'reload systemd units (systemctl daemon-reload)';
    case 'removeFile':
      return `remove ${step.path}`;
    case 'removeDirectory':
      return `remove ${step.path}${step.recursive ? ' and its contents' : ' if empty'}`;
    case 'removeSystemUser':
      return `remove the user ${step.name}`;
    case 'startAgent':
      return `start the keymaker agent detached as ${step.user} with CAP_KILL, its sockets made by root (pid in ${step.pidFile}; nothing restarts it)`;
    case 'stopAgent':
      return `stop the keymaker agent (pid in ${step.pidFile})`;
    case 'mountFilesystem':
      return `mount ${step.mountPoint} (the EFS home share, from /etc/fstab)`;
    case 'unmountFilesystem':
      return `unmount ${step.mountPoint} (the EFS home share)`;
  }
}

/** What the error says install was doing when a step failed ("install failed while ..."). */
export function stepActivity(step: InstallStep): string {
  switch (step.kind) {
    case 'validate':
      return step.check === 'sshdLive' || step.check === 'sshdWithoutKeymaker' || step.check === 'sshdMatch'
        ? 'checking the live sshd configuration'
        : step.check === 'sudoersLive'
          ? 'checking the live sudo policy'
          : 'checking';
    case 'createSystemUser':
      return `creating the user ${step.name}`;
    case 'makeDirectory':
      return 'creating directories';
    case 'writeJournal':
      return 'writing the install state';
    case 'writeFile':
      return `writing ${step.path}`;
    case 'restoreFile':
      return `restoring ${step.path}`;
    case 'enableService':
      return `enabling ${step.unit}`;
    case 'disableService':
      return `disabling ${step.unit}`;
    case 'reloadSshd':
      return 'reloading sshd';
    case 'reloadServiceManager':
      return 'reloading systemd units';
    case 'removeFile':
      return `removing ${step.path}`;
    case 'removeDirectory':
      return `removing ${step.path}`;
    case 'removeSystemUser':
      return `removing the user ${step.name}`;
    case 'startAgent':
      return 'starting the keymaker agent';
    case 'stopAgent':
      return 'stopping the keymaker agent';
    case 'mountFilesystem':
      return `mounting ${step.mountPoint}`;
    case 'unmountFilesystem':
      return `unmounting ${step.mountPoint}`;
    case 'installPackage':
      return `installing ${step.package}`;
    case 'selectAuthselectProfile':
      return `selecting the authselect profile custom/${step.profile.name}`;
    case 'restoreAuthselectProfile':
      return `selecting the authselect profile ${step.previous.profile} again`;
  }
}

/** A step as --json shows it: its kind, its path or unit when it has one, and the line people read. */
export interface InstallStepSummary {
  kind: InstallStepKind;
  description: string;
  path?: string;
}

export function summarizeStep(step: InstallStep): InstallStepSummary {
  const p = 'path' in step && typeof step.path === 'string' ? step.path : 'unit' in step ? step.unit : undefined;
  return { kind: step.kind, description: describeStep(step), ...(p ? { path: p } : {}) };
}
