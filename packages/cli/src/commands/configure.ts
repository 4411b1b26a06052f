import { createClientFactory, runConfigureCommand } from '@keymaker/admin';
import { awsOptionsFromFlags, type Commands } from '../context';
import { runCommand } from '../run';

/** `keymaker configure`: administrator setup of IAM (policy, roles, role description). */
export function registerConfigureCommand(commands: Commands): Commands {
  return commands.command(
    'configure',
    'Set up IAM for keymaker hosts: the read policy, the instance role and its description (cross-account too)',
    (y) =>
      y
        .option('instance-iam-role', {
          type: 'string',
          demandOption: true,
          describe: 'instance role name, or its ARN in another account',
        })
        .option('require-iam-group', { type: 'string', describe: 'only members of this IAM group may log in' })
        .option('sudo-iam-group', { type: 'string', describe: 'members of this IAM group get sudo on every host' })
        .option('username-suffix', { type: 'string', describe: 'IAM user name = Linux name + this suffix' })
        .option('cross-account-profile', { type: 'string', describe: 'AWS profile for the instance role account' })
        .option('id-resolver-iam-role', {
          type: 'string',
          default: 'KeymakerIdResolver',
          describe: 'resolver role name (cross-account)',
        })
        .option('instance-iam-policy', {
          type: 'string',
          default: 'KeymakerInstanceIAMReadAccess',
          describe: 'managed policy name',
        })
        .option('uid-scheme', {
          type: 'string',
          choices: ['wide', 'legacy'],
          describe: 'UID/GID derivation (keymaker_uid_scheme)',
        })
        .option('linux-group-prefix', {
          type: 'string',
          describe: 'IAM group prefix for Linux groups (default keymaker_)',
        })
        .option('self-service-group', {
          type: 'string',
          describe: 'attach a policy to this IAM group: each member manages only her own SSH keys',
        })
        .option('mfa', {
          type: 'boolean',
          describe: 'with --self-service-group: key uploads need MFA (default); --no-mfa lets them go without',
        })
        .option('dry-run', { type: 'boolean', describe: 'print the plan; change nothing' }),
    (args) =>
      runCommand(args.debug, async () => {
        // --region, --profile and --timeout as for every command; a bad --timeout fails here, before any call.
        const aws = awsOptionsFromFlags(args);
        const factory = createClientFactory({ region: aws.region, profile: aws.profile, deadline: aws.deadline });
        const result = await runConfigureCommand(args, factory);
        for (const line of result.stdout) process.stdout.write(`${line}\n`);
        for (const line of result.stderr) process.stderr.write(`${line}\n`);
        return result.exitCode;
      }),
  );
}
