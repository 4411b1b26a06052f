import { expect } from '@jest/globals';
import {
  AttachRolePolicyCommand,
  CreateInstanceProfileCommand,
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  CreateRoleCommand,
  AddRoleToInstanceProfileCommand,
  DeletePolicyVersionCommand,
  GetInstanceProfileCommand,
  GetPolicyCommand,
  GetRoleCommand,
  IAMClient,
  UpdateAssumeRolePolicyCommand,
  UpdateRoleDescriptionCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { AwsError, EXIT_CODES, isKeymakerError } from '@keymaker/core';
import {
  applyPlan,
  configure,
  parseConfigureOptions,
  runConfigureCommand,
  type ClientFactory,
  type Plan,
  type PolicyDocument,
} from '@keymaker/admin';

/** The shape of `keymaker configure --json`'s one document. */
interface ConfigureJson {
  ok: boolean;
  dryRun: boolean;
  changed: boolean;
  nothingToChange: boolean;
  applied: number;
  plan: Plan;
}

const A = '123456789012';
const B = '222222222222';

function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 403 } });
}

const MUTATING = [
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  DeletePolicyVersionCommand,
  CreateRoleCommand,
  UpdateAssumeRolePolicyCommand,
  UpdateRoleDescriptionCommand,
  CreateInstanceProfileCommand,
  AddRoleToInstanceProfileCommand,
  AttachRolePolicyCommand,
];

/** An empty account: every Get answers NoSuchEntity, every create succeeds. */
function emptyAccount(account: string) {
  const iam = new IAMClient({ region: 'us-east-1' });
  const sts = new STSClient({ region: 'us-east-1' });
  const iamMock = mockClient(iam);
  const stsMock = mockClient(sts);
  stsMock
    .on(GetCallerIdentityCommand)
    .resolves({ Account: account, Arn: `arn:aws:sts::${account}:assumed-role/admin/me` });
  const missing = () => Object.assign(new Error('not found'), { name: 'NoSuchEntityException' });
  iamMock.on(GetPolicyCommand).rejects(missing());
  iamMock.on(GetRoleCommand).rejects(missing());
  iamMock.on(GetInstanceProfileCommand).rejects(missing());
  for (const command of MUTATING) iamMock.on(command as never).resolves({});
  return { iam, sts, iamMock, stsMock };
}

async function capture(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('configure with mocked IAM', () => {
  it('dry run makes only read calls', async () => {
    const a = emptyAccount(A);
    const result = await configure(a, parseConfigureOptions({ instanceIamRole: 'web' }), { dryRun: true });
    expect(result.plan.steps).toHaveLength(5);
    expect(result.applied).toEqual([]);
    for (const command of MUTATING) expect(a.iamMock).not.toHaveReceivedCommand(command as never);
  });

  it('applies steps with the right arguments', async () => {
    const a = emptyAccount(A);
    const result = await configure(a, parseConfigureOptions({ instanceIamRole: 'web', requireIamGroup: 'ops' }));
    expect(result.changed).toBe(true);
    expect(a.iamMock).toHaveReceivedCommandWith(CreateRoleCommand, { RoleName: 'web', Path: '/' });
    expect(a.iamMock).toHaveReceivedCommandWith(AttachRolePolicyCommand, {
      RoleName: 'web',
      PolicyArn: `arn:aws:iam::${A}:policy/KeymakerInstanceIAMReadAccess`,
    });
    expect(a.iamMock).toHaveReceivedCommandWith(UpdateRoleDescriptionCommand, {
      RoleName: 'web',
      Description: 'keymaker_require_iam_group=ops',
    });
    const createPolicy = a.iamMock.commandCalls(CreatePolicyCommand)[0]!.args[0].input;
    expect((JSON.parse(createPolicy.PolicyDocument!) as PolicyDocument).Statement[0]!.Action).toContain(
      'iam:ListUsers',
    );
  });

  it('AccessDenied while reading names the missing permission, nothing changed', async () => {
    const a = emptyAccount(A);
    a.iamMock.on(GetRoleCommand).rejects(awsError('AccessDenied', 'User: x is not authorized to perform: iam:GetRole'));
    const error = await capture(configure(a, parseConfigureOptions({ instanceIamRole: 'web' })));
    expect(isKeymakerError(error, 'ACCESS_DENIED')).toBe(true);
    expect(error.message).toMatch(/^GetRole was denied: .*; grant the permission iam:GetRole$/);
    for (const command of MUTATING) expect(a.iamMock).not.toHaveReceivedCommand(command as never);
  });

  it('AccessDenied on the first change names the permission and says nothing changed', async () => {
    const a = emptyAccount(A);
    a.iamMock.on(CreatePolicyCommand).rejects(awsError('AccessDeniedException', 'not authorized'));
    const error = await capture(configure(a, parseConfigureOptions({ instanceIamRole: 'web' })));
    expect(error).toBeInstanceOf(AwsError);
    expect((error as AwsError).exitCode).toBe(EXIT_CODES.ACCESS_DENIED);
    expect(error.message).toMatch(
      /grant the permission iam:CreatePolicy \(at: create managed policy .*; nothing was changed\)$/,
    );
  });

  it('a failure midway says how far it got', async () => {
    const a = emptyAccount(A);
    a.iamMock.on(AttachRolePolicyCommand).rejects(awsError('AccessDenied', 'not authorized'));
    const error = await capture(configure(a, parseConfigureOptions({ instanceIamRole: 'web' })));
    expect(error.message).toMatch(
      /grant the permission iam:AttachRolePolicy .*4 of 5 changes were made; run configure again to finish\)$/,
    );
    expect(a.iamMock).not.toHaveReceivedCommand(UpdateRoleDescriptionCommand);
  });

  it('retries a trust policy whose principal IAM does not know yet', async () => {
    const a = emptyAccount(A);
    a.iamMock
      .on(CreateRoleCommand)
      .rejectsOnce(
        awsError('MalformedPolicyDocumentException', 'Invalid principal in policy: "AWS":"arn:aws:iam::2:role/web"'),
      )
      .resolves({});
    const sleeps: number[] = [];
    const options = parseConfigureOptions({ instanceIamRole: 'web' });
    const result = await configure(a, options, {
      principalRetryDelaysMs: [5, 10],
      sleep: async (ms) => void sleeps.push(ms),
    });
    expect(sleeps).toEqual([5]);
    expect(a.iamMock).toHaveReceivedCommandTimes(CreateRoleCommand, 2);
    expect(result.applied).toHaveLength(5);
  });

  it('does not retry other malformed documents', async () => {
    const a = emptyAccount(A);
    a.iamMock.on(CreateRoleCommand).rejects(awsError('MalformedPolicyDocumentException', 'Syntax errors in policy'));
    const state = await configure(a, parseConfigureOptions({ instanceIamRole: 'web' }), { dryRun: true });
    const error = await capture(
      applyPlan(a, state.plan, { principalRetryDelaysMs: [1], sleep: async () => undefined }),
    );
    expect(isKeymakerError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect(a.iamMock).toHaveReceivedCommandTimes(CreateRoleCommand, 1);
  });

  it('cross-account: instance steps use the profile clients, resolver steps the current ones', async () => {
    const current = emptyAccount(A);
    const other = emptyAccount(B);
    const options = parseConfigureOptions({ instanceIamRole: `arn:aws:iam::${B}:role/web`, crossAccountProfile: 'b' });
    await configure({ ...current, crossAccount: other }, options);
    expect(other.iamMock).toHaveReceivedCommandWith(CreateRoleCommand, { RoleName: 'web' });
    expect(other.iamMock).toHaveReceivedCommandWith(CreateInstanceProfileCommand, { InstanceProfileName: 'web' });
    expect(current.iamMock).toHaveReceivedCommandWith(CreateRoleCommand, { RoleName: 'KeymakerIdResolver' });
    expect(current.iamMock).not.toHaveReceivedCommand(CreateInstanceProfileCommand);
    const resolverTrust = JSON.parse(
      current.iamMock.commandCalls(CreateRoleCommand)[0]!.args[0].input.AssumeRolePolicyDocument!,
    ) as PolicyDocument;
    expect(resolverTrust.Statement[0]!.Principal).toEqual({ AWS: `arn:aws:iam::${B}:role/web` });
  });
});

describe('runConfigureCommand', () => {
  function factoryFor(
    byProfile: Record<string, ReturnType<typeof emptyAccount>>,
  ): ClientFactory & { profiles: (string | undefined)[] } {
    const profiles: (string | undefined)[] = [];
    return {
      profiles,
      iamClientFor: (profile) => {
        profiles.push(profile);
        return byProfile[profile ?? '']!.iam;
      },
      stsClientFor: (profile) => byProfile[profile ?? '']!.sts,
    };
  }
  const profileFiles = {
    env: { AWS_CONFIG_FILE: '/c', AWS_SHARED_CREDENTIALS_FILE: '/k' },
    readFile: (f: string) => (f === '/c' ? '[profile b]\n' : undefined),
  };

  it('prints the plan and a summary', async () => {
    const out = await runConfigureCommand({ instanceIamRole: 'web' }, factoryFor({ '': emptyAccount(A) }));
    expect(out.exitCode).toBe(0);
    expect(out.stdout[0]).toBe(`keymaker configure: instance role arn:aws:iam::${A}:role/web (account ${A})`);
    expect(out.stdout.at(-1)).toBe('done: 5 change(s) applied');
  });

  it('--json prints one document', async () => {
    const out = await runConfigureCommand(
      { instanceIamRole: 'web', json: true, 'dry-run': true },
      factoryFor({ '': emptyAccount(A) }),
    );
    expect(out.stdout).toHaveLength(1);
    const doc = JSON.parse(out.stdout[0]!) as ConfigureJson;
    expect(doc).toMatchObject({ ok: true, dryRun: true, changed: false, nothingToChange: false, applied: 0 });
    expect(doc.plan.steps[0]).toMatchObject({ action: 'createPolicy', account: A, side: 'instance' });
  });

  it('bad input: one line, exit code 3, no client built', async () => {
    const factory = factoryFor({});
    const out = await runConfigureCommand({ instanceIamRole: 'web', uidScheme: 'bogus' }, factory);
    expect(out).toEqual({
      exitCode: 3,
      stdout: [],
      stderr: ['keymaker: --uid-scheme "bogus": known schemes: wide, legacy; pass wide (default) or legacy'],
    });
    expect(factory.profiles).toEqual([]);
  });

  it('--json errors are JSON too', async () => {
    const out = await runConfigureCommand({ json: true }, factoryFor({}));
    expect(out.exitCode).toBe(EXIT_CODES.USAGE);
    expect(JSON.parse(out.stdout[0]!)).toEqual({
      ok: false,
      error: { code: 'USAGE', exitCode: 2, message: expect.stringMatching(/^--instance-iam-role is required/) },
    });
  });

  it('a profile missing from the files: one line, before any client is built', async () => {
    const factory = factoryFor({});
    const out = await runConfigureCommand(
      { instanceIamRole: `arn:aws:iam::${B}:role/web`, crossAccountProfile: 'nope' },
      factory,
      { profileLookup: profileFiles },
    );
    expect(out).toEqual({
      exitCode: EXIT_CODES.UNKNOWN_PROFILE,
      stdout: [],
      stderr: [
        'keymaker: AWS profile "nope" (--cross-account-profile) not found in /c or /k; create it (aws configure --profile NAME) or name an existing one',
      ],
    });
    expect(factory.profiles).toEqual([]);
  });

  it('the SDK failing to resolve a profile is reported the same way', async () => {
    const current = emptyAccount(A);
    const other = emptyAccount(B);
    other.stsMock
      .on(GetCallerIdentityCommand)
      .rejects(
        Object.assign(
          new Error('Could not resolve credentials using profile: [b] in configuration/credentials file(s).'),
          { name: 'CredentialsProviderError' },
        ),
      );
    const out = await runConfigureCommand(
      { instanceIamRole: `arn:aws:iam::${B}:role/web`, crossAccountProfile: 'b' },
      factoryFor({ '': current, b: other }),
      { profileLookup: profileFiles },
    );
    expect(out.stderr).toHaveLength(1);
    expect(out.stderr[0]).toMatch(
      /^keymaker: AWS profile "b" \(--cross-account-profile\) not found in \S+ or \S+; create it/,
    );
    expect(out.exitCode).toBe(EXIT_CODES.UNKNOWN_PROFILE);
  });

  it('--cross-account-profile with a role in the current account is refused', async () => {
    const out = await runConfigureCommand(
      { instanceIamRole: 'web', crossAccountProfile: 'b' },
      factoryFor({ '': emptyAccount(A), b: emptyAccount(B) }),
      { profileLookup: profileFiles },
    );
    expect(out.exitCode).toBe(3);
    expect(out.stderr[0]).toMatch(
      /--cross-account-profile b is only for an --instance-iam-role ARN in another account/,
    );
  });
});
