import { InputError, RoleConfigError, isKeymakerError } from '@keymaker/core';
import {
  DEFAULT_ID_RESOLVER_IAM_ROLE,
  DEFAULT_INSTANCE_IAM_POLICY,
  ec2TrustPolicy,
  formatPlan,
  instancePolicyDocument,
  parseConfigureOptions,
  planConfigure,
  planToJson,
  resolverPolicyDocument,
  resolverTrustPolicy,
  selfServicePolicyDocument,
  DEFAULT_SELF_SERVICE_IAM_POLICY,
  type ConfigureOptions,
  type ConfigureState,
  type ManagedPolicyState,
  type RoleState,
} from '@keymaker/admin';
import { awsProfileExists } from '../src/options';

const A = '123456789012';
const B = '222222222222';
const caller = {
  arn: `arn:aws:sts::${A}:assumed-role/admin/me`,
  accountId: A,
  kind: 'assumed-role' as const,
  name: 'admin',
};
const policyArn = (acct: string) => `arn:aws:iam::${acct}:policy/${DEFAULT_INSTANCE_IAM_POLICY}`;

function missingPolicy(acct = A): ManagedPolicyState {
  return { name: DEFAULT_INSTANCE_IAM_POLICY, arn: policyArn(acct), exists: false, versions: [] };
}
function policy(
  document: unknown,
  versionCount = 1,
  acct = A,
  defaultVersion = `v${versionCount}`,
): ManagedPolicyState {
  return {
    name: DEFAULT_INSTANCE_IAM_POLICY,
    arn: policyArn(acct),
    exists: true,
    defaultVersionId: defaultVersion,
    defaultDocument: document as Record<string, unknown>,
    versions: Array.from({ length: versionCount }, (_, i) => ({
      versionId: `v${i + 1}`,
      isDefault: `v${i + 1}` === defaultVersion,
      createDate: new Date(Date.UTC(2024, 0, 1 + i)).toISOString(),
    })),
  };
}
function missingRole(name: string, acct = A): RoleState {
  return { name, arn: `arn:aws:iam::${acct}:role/${name}`, path: '/', exists: false, attachedPolicyArns: [] };
}
function existingRole(name: string, extra: Partial<RoleState> = {}, acct = A): RoleState {
  return {
    name,
    arn: `arn:aws:iam::${acct}:role/${name}`,
    path: '/',
    exists: true,
    trustPolicy: ec2TrustPolicy() as unknown as Record<string, unknown>,
    attachedPolicyArns: [policyArn(acct)],
    ...extra,
  };
}

function freshState(): ConfigureState {
  return {
    caller,
    partition: 'aws',
    crossAccount: false,
    instance: {
      accountId: A,
      policy: missingPolicy(),
      role: missingRole('web'),
      instanceProfile: { name: 'web', exists: false, roleNames: [] },
    },
  };
}

function configuredState(description: string): ConfigureState {
  return {
    caller,
    partition: 'aws',
    crossAccount: false,
    instance: {
      accountId: A,
      policy: policy(instancePolicyDocument()),
      role: existingRole('web', { description }),
      instanceProfile: { name: 'web', exists: true, roleNames: ['web'] },
    },
  };
}

const opts = (raw: Record<string, unknown>): ConfigureOptions =>
  parseConfigureOptions({ instanceIamRole: 'web', ...raw });

describe('parseConfigureOptions', () => {
  it('applies the original defaults', () => {
    expect(opts({})).toEqual({
      instanceRole: { name: 'web', path: '/' },
      idResolverIamRole: DEFAULT_ID_RESOLVER_IAM_ROLE,
      instanceIamPolicy: DEFAULT_INSTANCE_IAM_POLICY,
    });
    expect(DEFAULT_ID_RESOLVER_IAM_ROLE).toBe('KeymakerIdResolver');
    expect(DEFAULT_INSTANCE_IAM_POLICY).toBe('KeymakerInstanceIAMReadAccess');
  });

  it('accepts kebab-case keys as yargs gives them', () => {
    const o = parseConfigureOptions({
      'instance-iam-role': 'web',
      'require-iam-group': 'ops',
      'username-suffix': '@x.org',
      'uid-scheme': 'legacy',
      'linux-group-prefix': 'km_',
    });
    expect(o).toMatchObject({
      requireIamGroup: 'ops',
      usernameSuffix: '@x.org',
      uidScheme: 'legacy',
      linuxGroupPrefix: 'km_',
    });
  });

  it('parses role ARNs, with paths', () => {
    expect(opts({ instanceIamRole: `arn:aws:iam::${B}:role/fleet/web` }).instanceRole).toEqual({
      name: 'web',
      path: '/fleet/',
      accountId: B,
      partition: 'aws',
      arn: `arn:aws:iam::${B}:role/fleet/web`,
    });
  });

  const bad: [Record<string, unknown>, RegExp, string][] = [
    [{ instanceIamRole: undefined }, /^--instance-iam-role is required/, 'USAGE'],
    [
      { instanceIamRole: 'arn:aws:iam::12:role/x' },
      /^--instance-iam-role "arn:aws:iam::12:role\/x": this is not a valid IAM role ARN; use /,
      'INVALID_ARGUMENT',
    ],
    [{ instanceIamRole: 'arn:aws:s3:::bucket' }, /not a valid IAM role ARN/, 'INVALID_ARGUMENT'],
    [{ instanceIamRole: `arn:aws:iam:us-east-1:${B}:role/x` }, /an IAM role ARN has no region/, 'INVALID_ARGUMENT'],
    [
      { instanceIamRole: 'has space' },
      /^--instance-iam-role "has space": not a valid IAM role name or ARN/,
      'INVALID_ARGUMENT',
    ],
    [{ instanceIamRole: 'x'.repeat(65) }, /longer than 64/, 'INVALID_ARGUMENT'],
    [{ usernameSuffix: 'a b' }, /^--username-suffix "a b": a suffix may contain only/, 'INVALID_ARGUMENT'],
    [{ usernameSuffix: 'x'.repeat(64) }, /^--username-suffix .*leaves no room/, 'INVALID_ARGUMENT'],
    [{ linuxGroupPrefix: '' }, /^--linux-group-prefix "": an empty prefix/, 'INVALID_ARGUMENT'],
    [{ linuxGroupPrefix: 'a,b' }, /^--linux-group-prefix "a,b"/, 'INVALID_ARGUMENT'],
    [{ uidScheme: 'narrow' }, /^--uid-scheme "narrow": known schemes: wide, legacy; pass wide/, 'INVALID_ARGUMENT'],
    [{ requireIamGroup: 'a/b' }, /^--require-iam-group "a\/b"/, 'INVALID_ARGUMENT'],
    [{ idResolverIamRole: 'x y' }, /^--id-resolver-iam-role "x y"/, 'INVALID_ARGUMENT'],
    [{ instanceIamPolicy: 'p/q' }, /^--instance-iam-policy "p\/q"/, 'INVALID_ARGUMENT'],
    [{ crossAccountProfile: 'a b' }, /^--cross-account-profile "a b"/, 'INVALID_ARGUMENT'],
    [{ requireIamGroup: ['a', 'b'] }, /^--require-iam-group was given 2 times/, 'INVALID_ARGUMENT'],
    [{ usernameSuffix: 'a\nb' }, /control character/, 'INVALID_ARGUMENT'],
  ];
  it.each(bad)('refuses %j with one line', (raw, message, code) => {
    let error: unknown;
    try {
      opts(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect(isKeymakerError(error, code as never)).toBe(true);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });
});

describe('awsProfileExists', () => {
  const files: Record<string, string> = {
    '/c': '[default]\nregion=us-east-1\n[profile prod]\nregion=eu-west-1\n[sso-session corp]\n',
    '/k': '[ci]\naws_access_key_id=x\n',
  };
  const lookup = {
    env: { AWS_CONFIG_FILE: '/c', AWS_SHARED_CREDENTIALS_FILE: '/k' },
    readFile: (f: string) => files[f],
  };
  it('finds profiles in either file', () => {
    expect(awsProfileExists('prod', lookup)).toBe(true);
    expect(awsProfileExists('ci', lookup)).toBe(true);
    expect(awsProfileExists('default', lookup)).toBe(true);
  });
  it('does not take other sections for profiles', () => {
    expect(awsProfileExists('corp', lookup)).toBe(false);
    expect(awsProfileExists('missing', lookup)).toBe(false);
    expect(awsProfileExists('prod', { env: {}, homedir: '/nowhere', readFile: () => undefined })).toBe(false);
  });
});

describe('configure --sudo-iam-group', () => {
  it('writes keymaker_sudo_iam_group into the role description and refuses a bad name', () => {
    const plan = planConfigure(freshState(), opts({ sudoIamGroup: 'ops-admins' }));
    const description = plan.steps.find((s) => s.action === 'updateRoleDescription')!.detail as { description: string };
    expect(description.description).toContain('keymaker_sudo_iam_group=ops-admins');
    expect(() => parseConfigureOptions({ instanceIamRole: 'web', 'sudo-iam-group': 'a/b' })).toThrow(
      /^--sudo-iam-group "a\/b"/,
    );
  });
});

describe('configure --self-service-group (who may grant access, issue 12)', () => {
  const ssArn = (acct = A) => `arn:aws:iam::${acct}:policy/${DEFAULT_SELF_SERVICE_IAM_POLICY}`;
  const withSelfService = (state: ConfigureState, over: Partial<NonNullable<ConfigureState['selfService']>> = {}) => ({
    ...state,
    selfService: {
      accountId: A,
      group: { name: 'engineers', exists: true, attachedPolicyArns: [] },
      policy: { name: DEFAULT_SELF_SERVICE_IAM_POLICY, arn: ssArn(), exists: false, versions: [] },
      ...over,
    },
  });

  it('parses --self-service-group and --no-mfa (yargs gives mfa: false); --no-mfa alone is refused', () => {
    expect(opts({ 'self-service-group': 'engineers' }).selfService).toEqual({
      group: 'engineers',
      requireMfa: true,
      policyName: DEFAULT_SELF_SERVICE_IAM_POLICY,
    });
    expect(opts({ 'self-service-group': 'engineers', mfa: false }).selfService?.requireMfa).toBe(false);
    expect(() => opts({ mfa: false })).toThrow(/^--no-mfa applies to --self-service-group only/);
    expect(() => opts({ 'self-service-group': 'a/b' })).toThrow(/^--self-service-group "a\/b"/);
    expect(opts({}).selfService).toBeUndefined();
  });

  it('creates the policy, attaches it to the group, leaves the role description alone', () => {
    const plan = planConfigure(
      withSelfService(configuredState('web hosts')),
      opts({ 'self-service-group': 'engineers' }),
    );
    expect(plan.steps.map((s) => `${s.action} ${s.target}`)).toEqual([
      `createPolicy ${ssArn()}`,
      `attachGroupPolicy arn:aws:iam::${A}:group/engineers`,
    ]);
    expect(plan.steps[0]!.detail).toMatchObject({
      policyName: DEFAULT_SELF_SERVICE_IAM_POLICY,
      document: selfServicePolicyDocument({ accountId: A }),
    });
    expect(plan.policyArns.selfService).toBe(ssArn());
  });

  it('a missing group is created first; the plan is idempotent once IAM holds it all', () => {
    const options = opts({ 'self-service-group': 'engineers' });
    const missing = planConfigure(
      withSelfService(configuredState('web hosts'), {
        group: { name: 'engineers', exists: false, attachedPolicyArns: [] },
      }),
      options,
    );
    expect(missing.steps.map((s) => s.action)).toEqual(['createPolicy', 'createGroup', 'attachGroupPolicy']);
    const done = withSelfService(configuredState('web hosts'), {
      group: { name: 'engineers', exists: true, attachedPolicyArns: [ssArn()] },
      policy: {
        ...policy(selfServicePolicyDocument({ accountId: A })),
        name: DEFAULT_SELF_SERVICE_IAM_POLICY,
        arn: ssArn(),
      },
    });
    expect(planConfigure(done, options).steps).toEqual([]);
    // Switching MFA off (or back on) is a new policy version, nothing else.
    const noMfa = planConfigure(done, opts({ 'self-service-group': 'engineers', mfa: false }));
    expect(noMfa.steps.map((s) => s.action)).toEqual(['createPolicyVersion']);
    expect(noMfa.steps[0]!.detail).toMatchObject({
      document: selfServicePolicyDocument({ accountId: A, requireMfa: false }),
    });
  });
});

describe('planConfigure, single account', () => {
  it('fresh account: every step, in order', () => {
    const plan = planConfigure(freshState(), opts({ requireIamGroup: 'ssh-users' }));
    expect(plan.steps.map((s) => s.action)).toEqual([
      'createPolicy',
      'createRole',
      'createInstanceProfile',
      'addRoleToInstanceProfile',
      'attachRolePolicy',
      'updateRoleDescription',
    ]);
    expect(plan.steps.every((s) => s.account === A && s.side === 'instance')).toBe(true);
    expect(plan.steps[0]!.detail).toEqual({
      policyName: DEFAULT_INSTANCE_IAM_POLICY,
      document: instancePolicyDocument(),
    });
    expect(plan.steps[1]!.detail).toEqual({ roleName: 'web', path: '/', trustPolicy: ec2TrustPolicy() });
    expect(plan.steps[5]!.detail).toEqual({
      roleName: 'web',
      description: 'keymaker_require_iam_group=ssh-users',
      previousDescription: '',
    });
    expect(plan.config).toEqual({ requireIamGroup: 'ssh-users' });
    expect(formatPlan(plan, { dryRun: true })).toMatchSnapshot();
    expect(planToJson(plan)).toEqual(JSON.parse(JSON.stringify(plan)));
  });

  it('nothing to change when IAM matches', () => {
    const plan = planConfigure(
      configuredState('team web keymaker_require_iam_group=ssh-users'),
      opts({ requireIamGroup: 'ssh-users' }),
    );
    expect(plan.steps).toEqual([]);
    expect(formatPlan(plan)).toEqual([
      `keymaker configure: instance role arn:aws:iam::${A}:role/web (account ${A})`,
      'nothing to change: IAM already matches these options',
    ]);
  });

  it('a policy that differs only in form is not rewritten', () => {
    const state = configuredState('');
    const doc = instancePolicyDocument();
    state.instance.policy.defaultDocument = { Statement: [...doc.Statement].reverse(), Version: doc.Version };
    expect(planConfigure(state, opts({})).steps).toEqual([]);
  });

  it('a changed option: a new policy version and a description that keeps the other text', () => {
    const state = configuredState(
      'Web fleet, owner ops keymaker_require_iam_group=old keymaker_linux_user_uid_offset=2000',
    );
    state.instance.policy = policy(
      { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'iam:GetUser', Resource: '*' }] },
      2,
    );
    const plan = planConfigure(state, opts({ requireIamGroup: 'new', usernameSuffix: '.ops' }));
    expect(plan.steps.map((s) => s.action)).toEqual(['createPolicyVersion', 'updateRoleDescription']);
    expect(plan.steps[0]!.detail).toEqual({
      policyArn: policyArn(A),
      document: instancePolicyDocument(),
      setAsDefault: true,
      replacesVersionId: 'v2',
    });
    expect(plan.steps[1]!.detail).toMatchObject({
      description: 'Web fleet, owner ops keymaker_require_iam_group=new keymaker_linux_user_suffix=.ops',
    });
  });

  it('5 versions: deletes the oldest non-default one first', () => {
    const state = configuredState('');
    state.instance.policy = policy({ Statement: [] }, 5, A, 'v1');
    const plan = planConfigure(state, opts({}));
    expect(plan.steps.map((s) => [s.action, (s.detail as { versionId?: string }).versionId])).toEqual([
      ['deletePolicyVersion', 'v2'],
      ['createPolicyVersion', undefined],
    ]);
  });

  it('5 versions: ties on date fall back to the version number', () => {
    const state = configuredState('');
    state.instance.policy = policy({ Statement: [] }, 5, A, 'v5');
    for (const v of state.instance.policy.versions) delete v.createDate;
    state.instance.policy.versions.reverse();
    expect(planConfigure(state, opts({})).steps[0]).toMatchObject({
      action: 'deletePolicyVersion',
      detail: { versionId: 'v1' },
    });
  });

  it('an existing role without EC2 trust gets a statement added, the others kept', () => {
    const lambda = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    };
    const state = configuredState('');
    state.instance.role.trustPolicy = lambda;
    const plan = planConfigure(state, opts({}));
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({ action: 'updateAssumeRolePolicy' });
    expect(
      (plan.steps[0]!.detail as unknown as { trustPolicy: { Statement: unknown[] } }).trustPolicy.Statement,
    ).toEqual([
      lambda.Statement[0],
      { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' },
    ]);
  });

  it('an empty instance profile gets the role; one holding another role is refused', () => {
    const state = configuredState('');
    state.instance.instanceProfile = { name: 'web', exists: true, roleNames: [] };
    expect(planConfigure(state, opts({})).steps.map((s) => s.action)).toEqual(['addRoleToInstanceProfile']);
    state.instance.instanceProfile.roleNames = ['other'];
    expect(() => planConfigure(state, opts({}))).toThrow(/instance profile web already holds role other/);
  });

  it('a description over 1000 characters is refused before any change', () => {
    const state = configuredState('x'.repeat(990));
    expect(() => planConfigure(state, opts({ requireIamGroup: 'ssh-users' }))).toThrow(RoleConfigError);
  });

  it('an ARN whose path differs from the existing role is refused', () => {
    const state = configuredState('');
    expect(() => planConfigure(state, opts({ instanceIamRole: `arn:aws:iam::${A}:role/other/web` }))).toThrow(
      `--instance-iam-role arn:aws:iam::${A}:role/other/web: the role web exists as arn:aws:iam::${A}:role/web; pass that ARN`,
    );
  });
});

describe('planConfigure, cross-account', () => {
  const instanceRoleArn = `arn:aws:iam::${B}:role/web`;
  const resolverArn = `arn:aws:iam::${A}:role/KeymakerIdResolver`;
  const crossOpts = () => opts({ instanceIamRole: instanceRoleArn, crossAccountProfile: 'b' });

  function crossState(): ConfigureState {
    return {
      caller,
      partition: 'aws',
      crossAccount: true,
      instance: {
        accountId: B,
        policy: missingPolicy(B),
        role: missingRole('web', B),
        instanceProfile: { name: 'web', exists: false, roleNames: [] },
      },
      resolver: { accountId: A, policy: missingPolicy(A), role: missingRole('KeymakerIdResolver', A) },
    };
  }

  it('fresh: the resolver is trusted by the instance role, the description comes last', () => {
    const plan = planConfigure(crossState(), crossOpts());
    expect(plan.steps.map((s) => `${s.side}:${s.account}:${s.action}`)).toEqual([
      `resolver:${A}:createPolicy`,
      `instance:${B}:createPolicy`,
      `instance:${B}:createRole`,
      `instance:${B}:createInstanceProfile`,
      `instance:${B}:addRoleToInstanceProfile`,
      `instance:${B}:attachRolePolicy`,
      `resolver:${A}:createRole`,
      `resolver:${A}:attachRolePolicy`,
      `instance:${B}:updateRoleDescription`,
    ]);
    expect(plan.steps[0]!.detail).toMatchObject({ document: resolverPolicyDocument() });
    expect(plan.steps[1]!.detail).toMatchObject({ document: instancePolicyDocument({ resolverRoleArn: resolverArn }) });
    expect(plan.steps[6]!.detail).toMatchObject({
      roleName: 'KeymakerIdResolver',
      trustPolicy: resolverTrustPolicy(instanceRoleArn),
    });
    expect(plan.steps[8]!.detail).toMatchObject({
      description: `keymaker_id_resolver_account=${A} keymaker_id_resolver_iam_role=KeymakerIdResolver`,
    });
    expect(plan).toMatchObject({
      crossAccount: true,
      accounts: { instance: B, resolver: A },
      instanceRoleArn,
      resolverRoleArn: resolverArn,
    });
    expect(formatPlan(plan)).toMatchSnapshot();
  });

  it("--self-service-group: the policy and the group are in the users' account, with the current credentials", () => {
    const state: ConfigureState = {
      ...crossState(),
      selfService: {
        accountId: A,
        group: { name: 'engineers', exists: true, attachedPolicyArns: [] },
        policy: {
          name: 'KeymakerSelfServiceSSHKeys',
          arn: `arn:aws:iam::${A}:policy/KeymakerSelfServiceSSHKeys`,
          exists: false,
          versions: [],
        },
      },
    };
    const plan = planConfigure(
      state,
      opts({ instanceIamRole: instanceRoleArn, crossAccountProfile: 'b', selfServiceGroup: 'engineers' }),
    );
    const selfService = plan.steps.filter((s) => s.action === 'attachGroupPolicy' || s.target.includes('SelfService'));
    expect(selfService.map((s) => `${s.side}:${s.account}:${s.action}`)).toEqual([
      `resolver:${A}:createPolicy`,
      `resolver:${A}:attachGroupPolicy`,
    ]);
    expect(selfService[0]!.detail).toMatchObject({ document: selfServicePolicyDocument({ accountId: A }) });
    expect(plan.steps.at(-1)!.action).toBe('updateRoleDescription');
  });

  it('an existing resolver role trusted by another instance role keeps that trust and gains this one', () => {
    const state = crossState();
    const other = `arn:aws:iam::333333333333:role/web`;
    state.resolver!.role = existingRole('KeymakerIdResolver', { trustPolicy: resolverTrustPolicy(other) as never }, A);
    const plan = planConfigure(state, crossOpts());
    const trust = plan.steps.find((s) => s.action === 'updateAssumeRolePolicy');
    expect(trust).toMatchObject({ side: 'resolver', account: A });
    expect(
      (trust!.detail as unknown as { trustPolicy: { Statement: { Principal: unknown }[] } }).trustPolicy.Statement.map(
        (s) => s.Principal,
      ),
    ).toEqual([{ AWS: other }, { AWS: instanceRoleArn }]);
  });

  it('refuses a resolver role with a path (hosts assume it at /)', () => {
    const state = crossState();
    state.resolver!.role = {
      ...existingRole('KeymakerIdResolver', {}, A),
      path: '/x/',
      arn: `arn:aws:iam::${A}:role/x/KeymakerIdResolver`,
    };
    expect(() => planConfigure(state, crossOpts())).toThrow(
      /--id-resolver-iam-role KeymakerIdResolver: the role exists with path \/x\//,
    );
  });
});
