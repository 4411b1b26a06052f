// Issue 13 point 1: whose credentials decide who logs in. The host resolves its directory only
// as a role (a user or root-account caller is an error, never "no config"), and a cached role
// config is used only by the identity that read it.
import { GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { resolveDirectory, type CacheStore } from '@keymaker/core';

const iamMock = mockClient(IAMClient);
const stsMock = mockClient(STSClient);
beforeEach(() => {
  iamMock.reset();
  stsMock.reset();
});

const ROLE_A = 'arn:aws:sts::111111111111:assumed-role/keymaker-instance/i-0123456789abcdef0';
const ROLE_A_OTHER_SESSION = 'arn:aws:sts::111111111111:assumed-role/keymaker-instance/i-0fedcba9876543210';
const ROLE_B = 'arn:aws:sts::111111111111:assumed-role/other-role/session';
const USER = 'arn:aws:iam::111111111111:user/root-admin';
const ACCOUNT_ROOT = 'arn:aws:iam::111111111111:root';

function clients() {
  return {
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    iamClientFor: () => new IAMClient({ region: 'us-east-1' }),
  };
}

function memoryCache(initial?: unknown): CacheStore & { value: unknown } {
  const store = {
    value: initial,
    get: async () => store.value,
    set: async (_key: string, value: unknown) => {
      store.value = JSON.parse(JSON.stringify(value));
    },
  };
  return store;
}

describe('(c) a non-role caller is never "no config" for the host', () => {
  it.each([USER, ACCOUNT_ROOT])('refuses %s, naming the ARN and the fix, and caches nothing', async (arn) => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: arn });
    const cache = memoryCache();
    const failure = resolveDirectory({ ...clients(), cache, requireRole: true });
    await expect(failure).rejects.toMatchObject({ code: 'NO_INSTANCE_ROLE' });
    await expect(resolveDirectory({ ...clients(), cache, requireRole: true })).rejects.toThrow(arn);
    await expect(resolveDirectory({ ...clients(), cache, requireRole: true })).rejects.toThrow(
      "keymaker's host commands must run with the instance role",
    );
    expect(iamMock).not.toHaveReceivedCommand(GetRoleCommand);
    expect(cache.value).toBeUndefined();
  });

  it('does not trust a cached "no config" entry', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: USER });
    const cache = memoryCache({ savedAt: Date.now(), source: 'none', caller: { arn: USER }, config: {} });
    await expect(resolveDirectory({ ...clients(), cache, requireRole: true })).rejects.toMatchObject({
      code: 'NO_INSTANCE_ROLE',
    });
  });
});

describe('(b) a cached config is used only by the identity that read it', () => {
  it('a config another identity cached is not used: the caller reads its own role', async () => {
    // Written by a run that had root's own (non-role) credentials, with no required group.
    const cache = memoryCache({ savedAt: Date.now(), source: 'none', caller: { arn: USER }, config: {} });
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A });
    iamMock.on(GetRoleCommand).resolves({ Role: { Description: 'keymaker_require_iam_group=ssh-users' } as never });
    const result = await resolveDirectory({ ...clients(), cache });
    expect(result.cached.config).toBe(false);
    expect(result.config.requireIamGroup).toBe('ssh-users');
    expect(iamMock).toHaveReceivedCommandWith(GetRoleCommand, { RoleName: 'keymaker-instance' });
  });

  it("another role's cached config is not used", async () => {
    const cache = memoryCache({ savedAt: Date.now(), source: 'role', caller: { arn: ROLE_B }, config: {} });
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A });
    iamMock.on(GetRoleCommand).resolves({ Role: { Description: 'keymaker_require_iam_group=ssh-users' } as never });
    const result = await resolveDirectory({ ...clients(), cache, requireRole: true });
    expect(result.cached.config).toBe(false);
    expect(result.config.requireIamGroup).toBe('ssh-users');
  });

  it('the same role (any session name) uses its cached config', async () => {
    const cache = memoryCache({
      savedAt: Date.now(),
      source: 'role',
      caller: { arn: ROLE_A },
      config: { requireIamGroup: 'ssh-users' },
    });
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A_OTHER_SESSION });
    const result = await resolveDirectory({ ...clients(), cache, requireRole: true });
    expect(result.cached.config).toBe(true);
    expect(result.config.requireIamGroup).toBe('ssh-users');
    expect(iamMock).not.toHaveReceivedCommand(GetRoleCommand);
  });

  it('an STS failure while checking the identity is an error, not a cache hit', async () => {
    const cache = memoryCache({
      savedAt: Date.now(),
      source: 'role',
      caller: { arn: ROLE_A },
      config: { requireIamGroup: 'ssh-users' },
    });
    stsMock.on(GetCallerIdentityCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied' }));
    await expect(resolveDirectory({ ...clients(), cache, requireRole: true })).rejects.toBeDefined();
  });
});

describe('(d) a cached caller is recognised by the access key it was answered for', () => {
  const KEY_1 = 'ASIAEXAMPLEKEY000001';
  const KEY_2 = 'ASIAEXAMPLEKEY000002';
  const withKey = (accessKeyId: string) => ({
    ...clients(),
    sts: new STSClient({ region: 'us-east-1', credentials: { accessKeyId, secretAccessKey: 'secret' } }),
    recogniseCallerByAccessKey: true,
  });
  const ROLE_CONFIG = { Role: { Description: 'keymaker_require_iam_group=ssh-users' } as never };
  /** What a run with role A's key `callerAccessKeyId` cached. */
  const entryFor = (callerAccessKeyId: string, requireIamGroup = 'ssh-users') => ({
    savedAt: Date.now(),
    source: 'role',
    caller: { arn: ROLE_A },
    callerAccessKeyId,
    config: { requireIamGroup },
  });

  it('the same key again: no GetCallerIdentity, the cached config', async () => {
    const cache = memoryCache();
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A });
    iamMock.on(GetRoleCommand).resolves(ROLE_CONFIG);
    await resolveDirectory({ ...withKey(KEY_1), cache, requireRole: true });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(cache.value).toMatchObject({ callerAccessKeyId: KEY_1 });

    const again = await resolveDirectory({ ...withKey(KEY_1), cache, requireRole: true });
    expect(again.cached.config).toBe(true);
    expect(again.config.requireIamGroup).toBe('ssh-users');
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(iamMock).toHaveReceivedCommandTimes(GetRoleCommand, 1);
  });

  it('another key is asked about; another role behind it does not get the cached config', async () => {
    const cache = memoryCache(entryFor(KEY_1));
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_B });
    iamMock.on(GetRoleCommand).resolves({ Role: { Description: 'keymaker_require_iam_group=other' } as never });
    const result = await resolveDirectory({ ...withKey(KEY_2), cache, requireRole: true });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(result.cached.config).toBe(false);
    expect(result.config.requireIamGroup).toBe('other');
    expect(cache.value).toMatchObject({ callerAccessKeyId: KEY_2, caller: { arn: ROLE_B } });
  });

  it('a rotated key of the same role: asked once, then recorded, so the next run need not ask', async () => {
    const cache = memoryCache(entryFor(KEY_1));
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A_OTHER_SESSION });
    expect((await resolveDirectory({ ...withKey(KEY_2), cache, requireRole: true })).cached.config).toBe(true);
    expect(cache.value).toMatchObject({ callerAccessKeyId: KEY_2 });
    await resolveDirectory({ ...withKey(KEY_2), cache, requireRole: true });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
    expect(iamMock).not.toHaveReceivedCommand(GetRoleCommand);
  });

  it('without the option, STS is asked even for the same key', async () => {
    const cache = memoryCache(entryFor(KEY_1));
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A });
    await resolveDirectory({ ...withKey(KEY_1), recogniseCallerByAccessKey: false, cache, requireRole: true });
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 1);
  });

  it('a malformed recorded key makes the entry unusable', async () => {
    const cache = memoryCache(entryFor('not a key', 'cached'));
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: ROLE_A });
    iamMock.on(GetRoleCommand).resolves(ROLE_CONFIG);
    const result = await resolveDirectory({ ...withKey('not a key'), cache, requireRole: true });
    expect(result.cached.config).toBe(false);
    expect(result.config.requireIamGroup).toBe('ssh-users');
  });
});
