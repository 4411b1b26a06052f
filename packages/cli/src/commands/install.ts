import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv } from 'yargs';
import { RoleConfigError } from '@keymaker/core';
import type { InstallPlanSummary } from '@keymaker/host';
import type { Commands } from '../context';
import { runCommand } from '../run';

const RELOAD_CHOICES = ['auto', 'systemd', 'service', 'pidfile', 'none'] as const;
const SCHEDULE_CHOICES = ['auto', 'systemd', 'cron'] as const;
const MODE_CHOICES = ['auto', 'agent', 'compat'] as const;

function sshdOptions<T>(y: Argv<T>) {
  return y
    .option('reload', {
      choices: RELOAD_CHOICES,
      default: 'auto' as const,
      describe: "how to reload sshd: auto = systemctl when systemd runs, else SIGHUP to the pid in sshd's PidFile",
    })
    .option('sshd-pid-file', {
      type: 'string',
      describe: "sshd's pid file for the SIGHUP reload (default: PidFile from sshd -T)",
    })
    .option('sshd', {
      type: 'string',
      default: '/usr/sbin/sshd',
      describe: 'the sshd binary used for sshd -t / sshd -T',
    })
    .option('dry-run', { type: 'boolean', describe: 'print the plan, change nothing' });
}

/** The host bundle built next to this CLI (dist/keymaker-host.js). */
function defaultBundle(): string {
  const entry = process.argv[1] ? fs.realpathSync(process.argv[1]) : '';
  return path.join(path.dirname(entry), 'keymaker-host.js');
}

const log = (line: string) => process.stderr.write(`keymaker: ${line}\n`);

export function registerInstallCommands(commands: Commands): Commands {
  return commands
    .command(
      'install',
      'Set up this host: sshd AuthorizedKeysCommand, the PAM account hook, the group-sync schedule (root)',
      (y) =>
        sshdOptions(y)
          .option('user', {
            type: 'string',
            default: 'keymaker',
            describe: 'the locked system user sshd runs the key lookup as',
          })
          .option('force', {
            type: 'boolean',
            describe: 'replace an existing AuthorizedKeysCommand (e.g. EC2 Instance Connect)',
          })
          .option('iam-endpoint', { type: 'string', describe: 'IAM endpoint (default: AWS_ENDPOINT_URL_IAM)' })
          .option('sts-endpoint', { type: 'string', describe: 'STS endpoint (default: AWS_ENDPOINT_URL_STS)' })
          .option('deadline-ms', { type: 'number', describe: 'hard deadline of one login lookup, ms (default 5000)' })
          .option('profile', { type: 'string', describe: 'AWS profile the host uses (hosts without an instance role)' })
          .option('credentials-file', {
            type: 'string',
            describe: 'AWS credentials file to copy to /etc/keymaker/credentials (root:USER 0640)',
          })
          .option('sync-interval', { type: 'number', describe: 'group sync period in minutes, 1-59 (default 5)' })
          .option('login-shell', {
            type: 'string',
            describe: "IAM users' login shell, an absolute path (default /bin/bash)",
          })
          .option('agent-refresh-seconds', {
            type: 'number',
            describe:
              'agent mode: how often the agent re-checks the IAM users it has seen, 1-3600 s (default 300); a removed user loses access within this time',
          })
          .option('mode', {
            choices: MODE_CHOICES,
            default: 'auto' as const,
            describe:
              'agent: `keymaker agent` serves users through NSS (libnss-systemd, installed with apt-get where missing) and keys to sshd, so the first connection logs in; compat: the account is made through PAM at the first connection, groups synced on a schedule; auto: the mode this host has, else agent where it can work, else compat',
          })
          .option('schedule', {
            choices: SCHEDULE_CHOICES,
            default: 'auto' as const,
            describe: 'group sync schedule: a systemd timer when systemd runs, else cron.d',
          })
          .option('node', {
            type: 'string',
            describe: "Node binary the hooks run (default: this one); must pass sshd's safe-path rule",
          })
          .option('bundle', {
            type: 'string',
            describe: 'host bundle to install (default: keymaker-host.js next to this CLI)',
          })
          .option('efs-home', {
            type: 'string',
            describe:
              "FS_ID[:/PATH], or role (the role's keymaker_efs_home): managed users' homes on this EFS file system, mounted on /home/keymaker before sshd (amazon-efs-utils with TLS when installed, else NFSv4.1); managed logins are refused while it is not mounted",
          })
          .option('adopt-legacy-accounts', {
            type: 'boolean',
            describe:
              "after installing, record as keymaker's the existing accounts (keymaker 1.x's) whose UID equals the one derived from their IAM user now; without it such accounts are not served (reads IAM with the host config's credentials)",
          }),
      (args) =>
        runCommand(args.debug, async () => {
          const a = args;
          const {
            runInstall,
            nodeHostSystem,
            installOptionsFromFlags,
            adoptLegacyAccountsCommand,
            efsHomeFromRoleCommand,
            hostCommandSyslog,
            flushHostCommandSyslog,
          } = await import('@keymaker/host');
          const options = await installOptionsFromFlags({
            user: a.user,
            node: a.node,
            force: a.force,
            schedule: a.schedule,
            mode: a.mode,
            syncInterval: a['sync-interval'],
            agentRefreshSeconds: a['agent-refresh-seconds'],
            loginShell: a['login-shell'],
            region: a.region,
            iamEndpoint: a['iam-endpoint'],
            stsEndpoint: a['sts-endpoint'],
            deadlineMs: a['deadline-ms'],
            profile: a.profile,
            efsHome: a['efs-home'],
            bundle: a.bundle ?? defaultBundle(),
            credentialsFile: a['credentials-file'],
            sshd: a.sshd,
            reload: a.reload,
            sshdPidFile: a['sshd-pid-file'],
            dryRun: a['dry-run'],
          });
          let result = runInstall(nodeHostSystem(), options, log);
          // --efs-home role: the fleet's share from its role's keymaker_efs_home, read (as the hooks read it) with
          // the host config this install just wrote; then the share is installed on top.
          if (!result.dryRun && a['efs-home'] === 'role') {
            const syslog = hostCommandSyslog();
            const fromRole = await efsHomeFromRoleCommand({ syslog }).finally(() =>
              flushHostCommandSyslog(syslog, (text) => process.stderr.write(text)),
            );
            if (!fromRole.efsHome)
              throw new RoleConfigError(
                `--efs-home role: ${fromRole.error ? `the role description could not be read (${fromRole.error})` : 'the role names no keymaker_efs_home'}; everything else is installed: set the token (or pass --efs-home FS_ID[:/PATH]) and run keymaker install again`,
              );
            log(`the role names keymaker_efs_home=${fromRole.efsHome}: installing the EFS home share`);
            result = runInstall(nodeHostSystem(), { ...options, efsHome: fromRole.efsHome }, log);
          }
          if (a.json) {
            process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          } else if (result.dryRun) {
            process.stdout.write(formatPlan(result.plan));
          } else {
            log(`installed: ${result.changed.length} file(s) changed; ${result.reload}`);
          }
          if (a['adopt-legacy-accounts']) {
            // A dry run writes no host config: it can adopt only on a host installed before.
            const syslog = hostCommandSyslog();
            await adoptLegacyAccountsCommand({ dryRun: result.dryRun }, { syslog }).finally(() =>
              flushHostCommandSyslog(syslog, (text) => process.stderr.write(text)),
            );
          }
          return undefined;
        }),
    )
    .command(
      'uninstall',
      'Remove what install wrote and restore what it changed, byte for byte (root)',
      (y) => sshdOptions(y),
      (args) =>
        runCommand(args.debug, async () => {
          const a = args;
          const { runUninstall, nodeHostSystem, DEFAULT_PATHS } = await import('@keymaker/host');
          const result = runUninstall(
            nodeHostSystem(),
            {
              paths: DEFAULT_PATHS,
              sshd: a.sshd,
              reload: a.reload,
              sshdPidFile: a['sshd-pid-file'],
              dryRun: Boolean(a['dry-run']),
            },
            log,
          );
          if (a.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          else if (!result.nothingToDo && !result.dryRun)
            log(`uninstalled: ${result.changed.length} path(s) restored or removed; ${result.reload}`);
          if (!a.json && !result.dryRun && fs.existsSync(DEFAULT_PATHS.managedAccounts)) {
            log(
              `left ${DEFAULT_PATHS.managedAccounts}: the accounts keymaker created stay, and so does its record of them (a later install serves them again)`,
            );
          }
        }),
    );
}

/** The dry run for people: what install would set up, then every step it would take, in order. */
function formatPlan(plan: InstallPlanSummary): string {
  const lines = [
    `user: ${plan.user.name}${plan.user.create ? ' (to be created: locked, no shell, no home)' : ' (exists)'}`,
    `sshd: ${plan.sshd === 'drop-in' ? 'drop-in in sshd_config.d' : 'block at the top of sshd_config'}`,
    `group sync: ${plan.schedule}`,
    'files:',
    ...plan.files.map((f) => `  ${f.path}  ${f.mode} ${f.owner}  ${f.purpose}`),
    ...(plan.restores.length ? ['restore (no longer used):', ...plan.restores.map((r) => `  ${r}`)] : []),
    `host config: ${JSON.stringify(plan.config)}`,
    'steps:',
    ...plan.steps.map((s, i) => `  ${i + 1}. ${s.description}`),
    ...plan.warnings.map((w) => `warning: ${w}`),
  ];
  return `${lines.join('\n')}\n`;
}
