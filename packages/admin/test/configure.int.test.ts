import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CreatePolicyCommand,
  CreatePolicyVersionCommand,
  CreateGroupCommand,
  GetInstanceProfileCommand,
  ListAttachedGroupPoliciesCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRoleCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  SetDefaultPolicyVersionCommand,
} from '@aws-sdk/client-iam';
import { loadInstanceConfig, parseRoleDescription, resolverRoleArn } from '@keymaker/core';
import {
  createClientFactory,
  ec2TrustPolicy,
  instancePolicyDocument,
  resolverPolicyDocument,
  resolverTrustPolicy,
  runConfigureCommand,
  selfServicePolicyDocument,
  type ClientFactory,
  type ConfigureCommandOptions,
  type Plan,
} from '@keymaker/admin';
import { parsePolicyDocument, policiesEqual } from '../src/policies';
import {
  DEFAULT_ACCOUNT_ID,
  createRoleWithDescription,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  resetMoto,
  stsClient,
  type TestCredentials,
} from '../../../tools/moto/seed';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startMoto } = require('../../../tools/moto/server.cjs') as {
  startMoto: () => Promise<{ endpoint: string; stop: () => Promise<void> }>;
};

/** The shape of `keymaker configure --json`'s one document. */
interface ConfigureJson {
  ok: boolean;
  dryRun: boolean;
  changed: boolean;
  nothingToChange: boolean;
  applied: number;
  plan: Plan;
}

const ACCOUNT_B = '222222222222';
const POLICY = 'KeymakerInstanceIAMReadAccess';

// A private moto server: these tests reset it between cases, and a reset on
// the shared server would wipe what other test files running in parallel seeded.
let moto: { endpoint: string; stop: () => Promise<void> };
let endpoint: string;
let iam: IAMClient;
let tmp: string;
let factory: ClientFactory;

beforeAll(async () => {
  moto = await startMoto();
  endpoint = moto.endpoint;
  iam = iamClient(endpoint);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-admin-int-'));
  factory = createClientFactory({ endpoint, region: 'us-east-1', maxAttempts: 1 });
}, 60_000);

afterAll(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  await moto?.stop();
});

beforeEach(async () => {
  await resetMoto(endpoint);
});

const NO_WAIT = { apply: { principalRetryDelaysMs: [] } };

async function run(options: ConfigureCommandOptions, env: Parameters<typeof runConfigureCommand>[2] = NO_WAIT) {
  return runConfigureCommand(options, factory, env);
}

async function policyDocument(client: IAMClient, arn: string): Promise<unknown> {
  const policy = (await client.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy!;
  const version = await client.send(
    new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId! }),
  );
  return parsePolicyDocument(version.PolicyVersion!.Document);
}

async function versions(client: IAMClient, arn: string): Promise<{ id: string; isDefault: boolean }[]> {
  const out = await client.send(new ListPolicyVersionsCommand({ PolicyArn: arn }));
  return (out.Versions ?? [])
    .map((v) => ({ id: v.VersionId!, isDefault: v.IsDefaultVersion === true }))
    .sort((a, b) => a.id.localeCompare(b.id));
}

async function role(client: IAMClient, name: string) {
  return (await client.send(new GetRoleCommand({ RoleName: name }))).Role!;
}

async function attached(client: IAMClient, name: string): Promise<string[]> {
  return ((await client.send(new ListAttachedRolePoliciesCommand({ RoleName: name }))).AttachedPolicies ?? []).map(
    (p) => p.PolicyArn!,
  );
}

const policyArnA = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:policy/${POLICY}`;

describe('keymaker configure --self-service-group (who may grant access)', () => {
  const selfServiceArn = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:policy/KeymakerSelfServiceSSHKeys`;
  const groupPolicies = async (group: string) =>
    ((await iam.send(new ListAttachedGroupPoliciesCommand({ GroupName: group }))).AttachedPolicies ?? []).map(
      (p) => p.PolicyArn!,
    );

  it('creates the least-privilege policy, attaches it to the group; a second run changes nothing', async () => {
    await iam.send(new CreateGroupCommand({ GroupName: 'engineers' }));
    const options = { instanceIamRole: 'keymaker-instance', 'self-service-group': 'engineers' };
    const first = await run(options);
    expect({ code: first.exitCode, stderr: first.stderr }).toEqual({ code: 0, stderr: [] });
    expect(first.stdout.join('\n')).toMatch(/attach policy KeymakerSelfServiceSSHKeys to IAM group engineers/);
    expect(await policyDocument(iam, selfServiceArn)).toEqual(
      selfServicePolicyDocument({ accountId: DEFAULT_ACCOUNT_ID }),
    );
    expect(await groupPolicies('engineers')).toEqual([selfServiceArn]);
    // The self-service group is no role token: the description does not name it.
    expect((await role(iam, 'keymaker-instance')).Description ?? '').not.toMatch(/engineers/);

    const second = await run({ ...options, json: true });
    const json = JSON.parse(second.stdout.join('\n')) as ConfigureJson;
    expect(json).toMatchObject({ ok: true, changed: false, nothingToChange: true });
    expect(await versions(iam, selfServiceArn)).toEqual([{ id: 'v1', isDefault: true }]);
  });

  it('--no-mfa: a new default version without the MFA condition; a missing group is created', async () => {
    const options = { instanceIamRole: 'keymaker-instance', 'self-service-group': 'new-team' };
    expect((await run(options)).exitCode).toBe(0);
    expect(await groupPolicies('new-team')).toEqual([selfServiceArn]);
    const noMfa = await run({ ...options, mfa: false, json: true });
    const json = JSON.parse(noMfa.stdout.join('\n')) as ConfigureJson;
    expect(json.plan.steps.map((s) => s.action)).toEqual(['createPolicyVersion']);
    const document = await policyDocument(iam, selfServiceArn);
    expect(document).toEqual(selfServicePolicyDocument({ accountId: DEFAULT_ACCOUNT_ID, requireMfa: false }));
    expect(JSON.stringify(document)).not.toContain('MultiFactorAuthPresent');
  });
});

describe('keymaker configure, single account', () => {
  it('sets up a fresh account: policy, role, instance profile, attachment, description', async () => {
    const result = await run({
      instanceIamRole: 'keymaker-instance',
      requireIamGroup: 'ssh-users',
      usernameSuffix: '@example.com',
    });
    expect(result.stderr).toEqual([]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout.join('\n')).toMatch(/create managed policy KeymakerInstanceIAMReadAccess/);
    expect(result.stdout.join('\n')).toMatch(/done: 6 change\(s\) applied/);

    expect(policiesEqual(await policyDocument(iam, policyArnA), instancePolicyDocument())).toBe(true);
    const r = await role(iam, 'keymaker-instance');
    expect(policiesEqual(parsePolicyDocument(r.AssumeRolePolicyDocument), ec2TrustPolicy())).toBe(true);
    expect(r.Description).toBe('keymaker_require_iam_group=ssh-users keymaker_linux_user_suffix=@example.com');
    expect(parseRoleDescription(r.Description)).toEqual({
      requireIamGroup: 'ssh-users',
      linuxUserSuffix: '@example.com',
    });
    expect(await attached(iam, 'keymaker-instance')).toEqual([policyArnA]);
    const profile = (await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: 'keymaker-instance' })))
      .InstanceProfile!;
    expect(profile.Roles?.map((x) => x.RoleName)).toEqual(['keymaker-instance']);
  });

  it('changes nothing on a second identical run, and says so', async () => {
    const options = {
      instanceIamRole: 'keymaker-instance',
      requireIamGroup: 'ssh-users',
      uidScheme: 'wide',
      linuxGroupPrefix: 'km_',
    };
    expect((await run(options)).exitCode).toBe(0);
    const second = await run(options);
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toEqual([
      `keymaker configure: instance role arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/keymaker-instance (account ${DEFAULT_ACCOUNT_ID})`,
      'nothing to change: IAM already matches these options',
    ]);
    const json = JSON.parse((await run({ ...options, json: true })).stdout.join('\n')) as ConfigureJson;
    expect(json).toMatchObject({ ok: true, changed: false, nothingToChange: true, applied: 0 });
    expect(json.plan.steps).toEqual([]);
    expect(await versions(iam, policyArnA)).toEqual([{ id: 'v1', isDefault: true }]);
  });

  it('on a changed option adds a policy version, updates the description and keeps its other text', async () => {
    // An existing role someone made by hand, and an older Keymaker policy with a narrower document.
    await createRoleWithDescription(iam, 'web', 'Web fleet, owner platform-team keymaker_require_iam_group=old-group');
    await iam.send(
      new CreatePolicyCommand({
        PolicyName: POLICY,
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iam:GetUser', Resource: '*' }],
        }),
      }),
    );

    const first = await run({ instanceIamRole: 'web', requireIamGroup: 'ssh-users', json: true });
    expect(first.exitCode).toBe(0);
    const actions = (JSON.parse(first.stdout[0]!) as ConfigureJson).plan.steps.map((s) => s.action);
    expect(actions).toEqual([
      'createPolicyVersion',
      'createInstanceProfile',
      'addRoleToInstanceProfile',
      'attachRolePolicy',
      'updateRoleDescription',
    ]);
    expect(await versions(iam, policyArnA)).toEqual([
      { id: 'v1', isDefault: false },
      { id: 'v2', isDefault: true },
    ]);
    expect(policiesEqual(await policyDocument(iam, policyArnA), instancePolicyDocument())).toBe(true);
    expect((await role(iam, 'web')).Description).toBe(
      'Web fleet, owner platform-team keymaker_require_iam_group=ssh-users',
    );

    const changed = await run({ instanceIamRole: 'web', requireIamGroup: 'ssh-users', usernameSuffix: '.ops' });
    expect(changed.exitCode).toBe(0);
    expect(changed.stdout.join('\n')).toMatch(/plan: 1 change\(s\)/);
    expect((await role(iam, 'web')).Description).toBe(
      'Web fleet, owner platform-team keymaker_require_iam_group=ssh-users keymaker_linux_user_suffix=.ops',
    );
    // The policy did not change, so no new version.
    expect(await versions(iam, policyArnA)).toHaveLength(2);
  });

  it('deletes the oldest non-default version when all 5 are used', async () => {
    const doc = (action: string) =>
      JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: action, Resource: '*' }] });
    await iam.send(new CreatePolicyCommand({ PolicyName: POLICY, PolicyDocument: doc('iam:GetUser') }));
    for (const action of ['iam:GetGroup', 'iam:ListGroups', 'iam:ListUsers', 'iam:GetRole']) {
      await iam.send(
        new CreatePolicyVersionCommand({ PolicyArn: policyArnA, PolicyDocument: doc(action), SetAsDefault: true }),
      );
    }
    // v1 is the default: the oldest non-default one is v2.
    await iam.send(new SetDefaultPolicyVersionCommand({ PolicyArn: policyArnA, VersionId: 'v1' }));
    expect(await versions(iam, policyArnA)).toHaveLength(5);

    const dry = await run({ instanceIamRole: 'keymaker-instance', dryRun: true });
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout.join('\n')).toMatch(/delete version v2 of policy KeymakerInstanceIAMReadAccess/);
    expect(await versions(iam, policyArnA)).toHaveLength(5);

    const result = await run({ instanceIamRole: 'keymaker-instance' });
    expect(result.stderr).toEqual([]);
    expect(await versions(iam, policyArnA)).toEqual([
      { id: 'v1', isDefault: false },
      { id: 'v3', isDefault: false },
      { id: 'v4', isDefault: false },
      { id: 'v5', isDefault: false },
      { id: 'v6', isDefault: true },
    ]);
    expect(policiesEqual(await policyDocument(iam, policyArnA), instancePolicyDocument())).toBe(true);
  });

  it('--dry-run prints the plan and changes nothing', async () => {
    const result = await run({ instanceIamRole: 'keymaker-instance', dryRun: true });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.join('\n')).toMatch(/plan \(dry run, nothing was changed\): 5 change\(s\)/);
    expect(result.stdout.join('\n')).toMatch(/dry run: no changes were made/);
    await expect(iam.send(new GetRoleCommand({ RoleName: 'keymaker-instance' }))).rejects.toThrow();
    await expect(iam.send(new GetPolicyCommand({ PolicyArn: policyArnA }))).rejects.toThrow();
  });

  it('refuses bad input with one line, a distinct exit code, and no change', async () => {
    const badArn = await run({ instanceIamRole: 'arn:aws:iam::12345:role/x' });
    expect(badArn.exitCode).toBe(3);
    expect(badArn.stderr).toEqual([
      'keymaker: --instance-iam-role "arn:aws:iam::12345:role/x": this is not a valid IAM role ARN; use arn:aws:iam::123456789012:role/NAME or just the role NAME',
    ]);
    const badSuffix = await run({ instanceIamRole: 'r', usernameSuffix: 'a b' });
    expect(badSuffix.exitCode).toBe(3);
    expect(badSuffix.stderr[0]).toMatch(/^keymaker: --username-suffix "a b": a suffix may contain only/);
    const badPrefix = await run({ instanceIamRole: 'r', linuxGroupPrefix: 'a,b' });
    expect(badPrefix.exitCode).toBe(3);
    expect(badPrefix.stderr[0]).toMatch(/^keymaker: --linux-group-prefix "a,b"/);
    const missing = await run(
      { instanceIamRole: `arn:aws:iam::${ACCOUNT_B}:role/r`, crossAccountProfile: 'no-such-profile' },
      {
        ...NO_WAIT,
        profileLookup: {
          env: { AWS_CONFIG_FILE: path.join(tmp, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(tmp, 'none') },
        },
      },
    );
    expect(missing.stderr).toEqual([
      expect.stringMatching(
        /^keymaker: AWS profile "no-such-profile" \(--cross-account-profile\) not found in \S+ or \S+; create it \(aws configure --profile NAME\) or name an existing one$/,
      ),
    ]);
    expect(missing.exitCode).toBe(24); // UNKNOWN_PROFILE
    const noProfile = await run({ instanceIamRole: `arn:aws:iam::${ACCOUNT_B}:role/r` });
    expect(noProfile.exitCode).toBe(3);
    expect(noProfile.stderr[0]).toMatch(
      /is in account 222222222222, not in 123456789012 where you are signed in; pass --cross-account-profile/,
    );
    await expect(iam.send(new GetPolicyCommand({ PolicyArn: policyArnA }))).rejects.toThrow();
  });
});

describe('keymaker configure, cross-account', () => {
  let saved: Record<string, string | undefined>;
  let credsB: TestCredentials;
  let profileFiles = 0;

  beforeEach(async () => {
    // Credentials acting in account B, stored as a named profile, as an admin would have them.
    credsB = await credentialsForAccount(stsClient(endpoint), ACCOUNT_B, 'admin', 'configure');
    // Fresh file names each time: the SDK caches the shared files' contents by path.
    const n = ++profileFiles;
    const credentialsFile = path.join(tmp, `credentials-${n}`);
    fs.writeFileSync(
      credentialsFile,
      `[instance-account]\naws_access_key_id = ${credsB.accessKeyId}\naws_secret_access_key = ${credsB.secretAccessKey}\naws_session_token = ${credsB.sessionToken}\n`,
    );
    fs.writeFileSync(path.join(tmp, `config-${n}`), '[profile instance-account]\nregion = us-east-1\n');
    saved = {
      AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE,
      AWS_SHARED_CREDENTIALS_FILE: process.env.AWS_SHARED_CREDENTIALS_FILE,
    };
    process.env.AWS_CONFIG_FILE = path.join(tmp, `config-${n}`);
    process.env.AWS_SHARED_CREDENTIALS_FILE = credentialsFile;
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  const instanceRoleArn = `arn:aws:iam::${ACCOUNT_B}:role/keymaker-instance`;
  const resolverArn = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/KeymakerIdResolver`;

  it('sets up both accounts, and a second run changes nothing', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined); // SDK: env creds and a profile both set
    const options = {
      instanceIamRole: instanceRoleArn,
      crossAccountProfile: 'instance-account',
      requireIamGroup: 'ssh-users',
    };
    const result = await run({ ...options, json: true });
    expect(result.stderr).toEqual([]);
    expect(result.exitCode).toBe(0);
    const { plan } = JSON.parse(result.stdout[0]!) as ConfigureJson;
    expect(plan).toMatchObject({
      crossAccount: true,
      accounts: { instance: ACCOUNT_B, resolver: DEFAULT_ACCOUNT_ID },
      instanceRoleArn,
      resolverRoleArn: resolverArn,
    });
    expect(plan.steps.map((s) => `${s.side}:${s.action}`)).toEqual([
      'resolver:createPolicy',
      'instance:createPolicy',
      'instance:createRole',
      'instance:createInstanceProfile',
      'instance:addRoleToInstanceProfile',
      'instance:attachRolePolicy',
      'resolver:createRole',
      'resolver:attachRolePolicy',
      'instance:updateRoleDescription',
    ]);

    // Account B: the instance side.
    const iamB = iamClient(endpoint, credsB);
    const policyArnB = `arn:aws:iam::${ACCOUNT_B}:policy/${POLICY}`;
    const instanceRole = await role(iamB, 'keymaker-instance');
    expect(instanceRole.Arn).toBe(instanceRoleArn);
    expect(parseRoleDescription(instanceRole.Description)).toEqual({
      idResolverAccount: DEFAULT_ACCOUNT_ID,
      idResolverIamRole: 'KeymakerIdResolver',
      requireIamGroup: 'ssh-users',
    });
    expect(
      policiesEqual(await policyDocument(iamB, policyArnB), instancePolicyDocument({ resolverRoleArn: resolverArn })),
    ).toBe(true);
    expect(await attached(iamB, 'keymaker-instance')).toEqual([policyArnB]);
    const profile = (await iamB.send(new GetInstanceProfileCommand({ InstanceProfileName: 'keymaker-instance' })))
      .InstanceProfile!;
    expect(profile.Roles?.map((x) => x.RoleName)).toEqual(['keymaker-instance']);

    // Account A (current): the ID resolver.
    const resolver = await role(iam, 'KeymakerIdResolver');
    expect(
      policiesEqual(parsePolicyDocument(resolver.AssumeRolePolicyDocument), resolverTrustPolicy(instanceRoleArn)),
    ).toBe(true);
    expect(await attached(iam, 'KeymakerIdResolver')).toEqual([policyArnA]);
    expect(policiesEqual(await policyDocument(iam, policyArnA), resolverPolicyDocument())).toBe(true);
    // Account A holds no instance role; account B holds no resolver role.
    await expect(iam.send(new GetRoleCommand({ RoleName: 'keymaker-instance' }))).rejects.toThrow();
    await expect(iamB.send(new GetRoleCommand({ RoleName: 'KeymakerIdResolver' }))).rejects.toThrow();

    const second = await run(options);
    expect(second.exitCode).toBe(0);
    expect(second.stdout[1]).toBe('nothing to change: IAM already matches these options');

    // What a host in account B would read with its instance-role credentials.
    const sts = stsClient(endpoint);
    const hostCreds = await instanceRoleCredentials(sts, instanceRoleArn, 'i-0abc');
    const host = await loadInstanceConfig({ iam: iamClient(endpoint, hostCreds), sts: stsClient(endpoint, hostCreds) });
    expect(host.caller.accountId).toBe(ACCOUNT_B);
    expect(resolverRoleArn(host.config)).toBe(resolverArn);
    warn.mockRestore();
  });

  it('refuses a profile that signs in to the wrong account, before any change', async () => {
    const result = await run({
      instanceIamRole: `arn:aws:iam::333333333333:role/keymaker-instance`,
      crossAccountProfile: 'instance-account',
    });
    expect(result.exitCode).toBe(3);
    expect(result.stderr[0]).toBe(
      'keymaker: --cross-account-profile instance-account signs in to account 222222222222, but the instance role is in account 333333333333; pass a profile for account 333333333333',
    );
    await expect(iam.send(new GetPolicyCommand({ PolicyArn: policyArnA }))).rejects.toThrow();
  });
});
