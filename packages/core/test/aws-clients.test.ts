import { IAMClient, ListSSHPublicKeysCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import {
  createDeadline,
  createIamClient,
  createStsClient,
  EXIT_CODES,
  exitCodeFor,
  formatError,
  isKeymakerError,
  withDeadline,
  type AwsConfigLookup,
} from '../src/index';
import { resolveAwsSettings } from '../src/aws-config';

const FILES: Record<string, string> = {
  '/c': '[default]\nregion = ap-south-1\n[profile prod]\nregion = eu-west-1\n[profile noregion]\noutput = json\n[sso-session corp]\n',
  '/k': '[ci]\naws_access_key_id = x\naws_secret_access_key = y\n',
};
function lookup(env: Record<string, string> = {}): AwsConfigLookup {
  return { env: { AWS_CONFIG_FILE: '/c', AWS_SHARED_CREDENTIALS_FILE: '/k', ...env }, readFile: (f) => FILES[f] };
}
const noFiles: AwsConfigLookup = { env: {}, homedir: '/nowhere', readFile: () => undefined };

/** The options the n-th send of a mocked client got (`send(command, options)`). */
function sendOptions(
  mock: { send: { getCall(n: number): { args: unknown[] } } },
  n = 0,
): { abortSignal?: AbortSignal } | undefined {
  return mock.send.getCall(n).args[1] as { abortSignal?: AbortSignal } | undefined;
}

function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}

describe('region: as the AWS CLI and boto3 choose it', () => {
  it('with no region anywhere, IAM/STS sign for us-east-1 (global endpoints)', () => {
    expect(resolveAwsSettings({}, noFiles)).toEqual({
      region: 'us-east-1',
      regionSource: 'default',
      profile: undefined,
    });
  });
  it('an explicit region wins over everything', () => {
    expect(
      resolveAwsSettings({ region: 'eu-north-1', profile: 'prod' }, lookup({ AWS_REGION: 'us-west-2' })).region,
    ).toBe('eu-north-1');
  });
  it('then AWS_REGION, then AWS_DEFAULT_REGION, then the profile', () => {
    expect(
      resolveAwsSettings({ profile: 'prod' }, lookup({ AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'ca-central-1' }))
        .region,
    ).toBe('us-west-2');
    expect(resolveAwsSettings({ profile: 'prod' }, lookup({ AWS_DEFAULT_REGION: 'ca-central-1' })).region).toBe(
      'ca-central-1',
    );
    expect(resolveAwsSettings({ profile: 'prod' }, lookup())).toMatchObject({
      region: 'eu-west-1',
      regionSource: 'profile',
    });
    expect(resolveAwsSettings({}, lookup({ AWS_PROFILE: 'prod' })).region).toBe('eu-west-1');
    expect(resolveAwsSettings({}, lookup()).region).toBe('ap-south-1');
  });
  it('a profile without a region (or only in the credentials file) gets us-east-1', () => {
    expect(resolveAwsSettings({ profile: 'noregion' }, lookup()).region).toBe('us-east-1');
    expect(resolveAwsSettings({ profile: 'ci' }, lookup())).toEqual({
      region: 'us-east-1',
      regionSource: 'default',
      profile: 'ci',
    });
  });
  it('the client built without a region signs for us-east-1', async () => {
    const iam = createIamClient({ configLookup: noFiles });
    const sts = createStsClient({ configLookup: noFiles });
    expect(await iam.config.region()).toBe('us-east-1');
    expect(await sts.config.region()).toBe('us-east-1');
    expect(await createIamClient({ region: 'eu-west-1', configLookup: noFiles }).config.region()).toBe('eu-west-1');
  });
});

describe('profile', () => {
  it('an unknown --profile is named with the files looked in, and has its own exit code', () => {
    const error = thrown(() => createIamClient({ profile: 'nosuch', configLookup: lookup() }));
    expect(isKeymakerError(error, 'UNKNOWN_PROFILE')).toBe(true);
    expect(exitCodeFor(error)).toBe(EXIT_CODES.UNKNOWN_PROFILE);
    expect(formatError(error)).toBe(
      'keymaker: AWS profile "nosuch" (--profile) not found in /c or /k; create it (aws configure --profile NAME) or name an existing one',
    );
  });
  it('a mistyped AWS_PROFILE is reported as such, not as a missing region', () => {
    const error = thrown(() => createStsClient({ configLookup: lookup({ AWS_PROFILE: 'prdo' }) }));
    expect(isKeymakerError(error, 'UNKNOWN_PROFILE')).toBe(true);
    expect(formatError(error)).toContain('"prdo" (AWS_PROFILE)');
  });
  it('other sections are not profiles; the credentials file names them bare', () => {
    expect(
      isKeymakerError(
        thrown(() => resolveAwsSettings({ profile: 'corp' }, lookup())),
        'UNKNOWN_PROFILE',
      ),
    ).toBe(true);
    expect(resolveAwsSettings({ profile: 'ci' }, lookup()).profile).toBe('ci');
  });
  it('an explicit profile reaches the SDK', async () => {
    const iam = createIamClient({ profile: 'prod', configLookup: lookup() });
    expect((iam.config as { profile?: string }).profile).toBe('prod');
  });
});

describe('deadline', () => {
  const iamMock = mockClient(IAMClient);
  const stsMock = mockClient(STSClient);
  afterEach(() => {
    iamMock.reset();
    stsMock.reset();
  });

  it('every call gets the deadline signal', async () => {
    iamMock.on(ListSSHPublicKeysCommand).resolves({ SSHPublicKeys: [] });
    const deadline = createDeadline(60_000);
    const iam = createIamClient({ region: 'us-east-1', deadline, configLookup: noFiles });
    await iam.send(new ListSSHPublicKeysCommand({ UserName: 'alice' }));
    deadline.clear();
    expect(sendOptions(iamMock)).toMatchObject({ abortSignal: deadline.signal });
  });

  it('a call that never answers fails with DEADLINE_EXCEEDED naming the endpoint, and its signal is aborted', async () => {
    stsMock.on(GetCallerIdentityCommand).callsFake(() => new Promise(() => undefined));
    const sts = createStsClient({
      region: 'us-east-1',
      stsEndpoint: 'https://sts.example.test/',
      deadline: createDeadline(50),
      configLookup: noFiles,
    });
    const call = sts.send(new GetCallerIdentityCommand({}));
    const seen = sendOptions(stsMock)?.abortSignal;
    const error = await call.catch((e: unknown) => e);
    expect(isKeymakerError(error, 'DEADLINE_EXCEEDED')).toBe(true);
    expect(exitCodeFor(error)).toBe(EXIT_CODES.DEADLINE_EXCEEDED);
    expect(formatError(error)).toBe(
      'keymaker: no answer from https://sts.example.test within 0.1 s (GetCallerIdentity); check network, --region and the endpoint, or raise --timeout',
    );
    expect(seen?.aborted).toBe(true);
  });

  it('without a deadline nothing is added to the call', async () => {
    iamMock.on(ListSSHPublicKeysCommand).resolves({ SSHPublicKeys: [] });
    await createIamClient({ region: 'us-east-1', configLookup: noFiles }).send(
      new ListSSHPublicKeysCommand({ UserName: 'a' }),
    );
    expect(sendOptions(iamMock)).toEqual({});
  });

  it('withDeadline: the body gets the signal; a body that ignores it still ends at the deadline', async () => {
    await expect(withDeadline(10_000, async (signal) => signal.aborted)).resolves.toBe(false);
    const error = await withDeadline(20, () => new Promise(() => undefined)).catch((e: unknown) => e);
    expect(isKeymakerError(error, 'DEADLINE_EXCEEDED')).toBe(true);
  });
});
