import { expect } from '@jest/globals';
import {
  GetGroupCommand,
  GetRoleCommand,
  GetSSHPublicKeyCommand,
  IAMClient,
  ListGroupsCommand,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
  UploadSSHPublicKeyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IamDirectory,
  parseSshPublicKey,
  resolveDirectory,
  resolveRoleConfig,
  unixIdFor,
  uploadSshPublicKey,
  type CacheStore,
  type KeymakerError,
} from '@keymaker/core';

const dir = mkdtempSync(join(tmpdir(), 'km-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function makeKey(name: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
  return readFileSync(join(dir, `${name}.pub`), 'utf8').trim();
}
const KEYS = Array.from({ length: 6 }, (_, i) => makeKey(`k${i}`));

const iamMock = mockClient(IAMClient);
const stsMock = mockClient(STSClient);
beforeEach(() => {
  iamMock.reset();
  stsMock.reset();
});

function serviceError(name: string, message = name) {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 } });
}

function keyAnswer(user: string, id: string, body: string, status = 'Active') {
  return {
    SSHPublicKey: { UserName: user, SSHPublicKeyId: id, Fingerprint: 'x', SSHPublicKeyBody: body, Status: status },
  } as never;
}

const directory = (config = {}) => new IamDirectory(new IAMClient({ region: 'us-east-1' }), resolveRoleConfig(config));

async function caught(promise: Promise<unknown>): Promise<KeymakerError> {
  try {
    await promise;
  } catch (error) {
    return error as KeymakerError;
  }
  throw new Error('expected a rejection');
}

describe('IamDirectory.authorizedKeys', () => {
  it('reads every page of the key list and returns only active, valid keys', async () => {
    iamMock
      .on(ListSSHPublicKeysCommand, { UserName: 'alice', Marker: undefined })
      .resolves({
        SSHPublicKeys: [
          { UserName: 'alice', SSHPublicKeyId: 'APKA0000000000000001', Status: 'Active', UploadDate: new Date() },
        ],
        IsTruncated: true,
        Marker: 'm1',
      })
      .on(ListSSHPublicKeysCommand, { UserName: 'alice', Marker: 'm1' })
      .resolves({
        SSHPublicKeys: [
          { UserName: 'alice', SSHPublicKeyId: 'APKA0000000000000002', Status: 'Inactive', UploadDate: new Date() },
          { UserName: 'alice', SSHPublicKeyId: 'APKA0000000000000003', Status: 'Active', UploadDate: new Date() },
          { UserName: 'alice', SSHPublicKeyId: 'APKA0000000000000004', Status: 'Active', UploadDate: new Date() },
        ],
        IsTruncated: false,
      });
    iamMock
      .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000001' })
      .resolves(keyAnswer('alice', 'APKA0000000000000001', KEYS[0]!));
    iamMock
      .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000003' })
      .resolves(keyAnswer('alice', 'APKA0000000000000003', KEYS[1]!));
    iamMock
      .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000004' })
      .resolves(keyAnswer('alice', 'APKA0000000000000004', `command="/bin/sh" ${KEYS[2]}`));

    const result = await directory().authorizedKeys('alice');
    expect(result.keys.map((k) => k.line)).toEqual([
      KEYS[0]!.split(' ').slice(0, 2).join(' '),
      KEYS[1]!.split(' ').slice(0, 2).join(' '),
    ]);
    expect(result.rejected).toEqual([{ keyId: 'APKA0000000000000004', reason: expect.stringMatching(/key options/) }]);
    // The inactive key's body is never fetched.
    expect(iamMock).not.toHaveReceivedCommandWith(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000002' });
    expect(iamMock).toHaveReceivedCommandTimes(ListSSHPublicKeysCommand, 2);
  });

  it('drops a key whose answer names another user or is no longer active', async () => {
    iamMock.on(ListSSHPublicKeysCommand).resolves({
      SSHPublicKeys: [
        { UserName: 'bob', SSHPublicKeyId: 'APKA0000000000000011', Status: 'Active', UploadDate: new Date() },
        { UserName: 'bob', SSHPublicKeyId: 'APKA0000000000000012', Status: 'Active', UploadDate: new Date() },
      ],
    });
    iamMock
      .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000011' })
      .resolves(keyAnswer('mallory', 'APKA0000000000000011', KEYS[0]!));
    iamMock
      .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000012' })
      .resolves(keyAnswer('bob', 'APKA0000000000000012', KEYS[1]!, 'Inactive'));
    const result = await directory().authorizedKeys('bob');
    expect(result.keys).toEqual([]);
    expect(result.rejected.map((r) => r.reason)).toEqual(['answer is for another user', 'key is not active']);
  });

  it('requires membership of the required group, reading every page of groups', async () => {
    iamMock.on(ListSSHPublicKeysCommand).resolves({ SSHPublicKeys: [] });
    iamMock
      .on(ListGroupsForUserCommand, { Marker: undefined })
      .resolves({
        Groups: [{ GroupName: 'a', GroupId: 'AGPA1', Path: '/', Arn: 'x', CreateDate: new Date() }],
        IsTruncated: true,
        Marker: 'p2',
      })
      .on(ListGroupsForUserCommand, { Marker: 'p2' })
      .resolves({ Groups: [{ GroupName: 'prod_ssh', GroupId: 'AGPA2', Path: '/', Arn: 'x', CreateDate: new Date() }] });
    await expect(directory({ requireIamGroup: 'prod_ssh' }).authorizedKeys('carol')).resolves.toMatchObject({
      keys: [],
    });
    const error = await caught(directory({ requireIamGroup: 'other' }).authorizedKeys('carol'));
    expect(error.code).toBe('NOT_IN_REQUIRED_GROUP');
  });

  it('maps an unknown user, throttling and access denied to typed errors', async () => {
    iamMock
      .on(ListSSHPublicKeysCommand)
      .rejects(serviceError('NoSuchEntityException', 'The user with name nobody cannot be found.'));
    expect((await caught(directory().authorizedKeys('nobody'))).code).toBe('NO_SUCH_USER');

    iamMock.on(ListSSHPublicKeysCommand).rejects(serviceError('Throttling', 'Rate exceeded'));
    expect((await caught(directory().authorizedKeys('alice'))).code).toBe('THROTTLED');

    iamMock.on(ListSSHPublicKeysCommand).rejects(serviceError('AccessDenied', 'not authorized'));
    const denied = await caught(directory().authorizedKeys('alice'));
    expect(denied.code).toBe('ACCESS_DENIED');
    expect(denied.message).toMatch(/iam:ListSSHPublicKeys/);
  });

  it('fails (never a partial list) when a later page fails', async () => {
    iamMock
      .on(ListSSHPublicKeysCommand, { Marker: undefined })
      .resolves({
        SSHPublicKeys: [
          { UserName: 'a', SSHPublicKeyId: 'APKA0000000000000021', Status: 'Active', UploadDate: new Date() },
        ],
        IsTruncated: true,
        Marker: 'm',
      })
      .on(ListSSHPublicKeysCommand, { Marker: 'm' })
      .rejects(serviceError('Throttling'));
    expect((await caught(directory().authorizedKeys('alice'))).code).toBe('THROTTLED');
  });

  it('refuses an invalid login name without calling IAM', async () => {
    expect((await caught(directory().authorizedKeys('../root'))).code).toBe('INVALID_USERNAME');
    expect(iamMock.calls()).toHaveLength(0);
  });

  describe('with knownBody (bodies stored by key ID)', () => {
    const body = (i: number) => {
      const parsed = parseSshPublicKey(KEYS[i]!);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.key;
    };
    const listed = (...keys: Array<[string, 'Active' | 'Inactive']>) => ({
      SSHPublicKeys: keys.map(([id, status]) => ({
        UserName: 'dana',
        SSHPublicKeyId: id,
        Status: status,
        UploadDate: new Date(),
        Fingerprint: 'x',
      })),
    });

    it('fetches only the bodies it does not know and says which it fetched', async () => {
      iamMock
        .on(ListSSHPublicKeysCommand)
        .resolves(listed(['APKA0000000000000031', 'Active'], ['APKA0000000000000032', 'Active']));
      iamMock
        .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000032' })
        .resolves(keyAnswer('dana', 'APKA0000000000000032', KEYS[4]!));
      const asked: string[] = [];
      const result = await directory().authorizedKeys('dana', {
        knownBody: (user, keyId) => {
          asked.push(`${user}/${keyId}`);
          return keyId === 'APKA0000000000000031' ? body(3) : undefined;
        },
      });
      expect(result.keys.map((k) => k.line)).toEqual([body(3).line, body(4).line]);
      expect(result.knownBodies).toBe(1);
      expect(result.fetched).toEqual([{ keyId: 'APKA0000000000000032', key: body(4) }]);
      expect(asked).toEqual(['dana/APKA0000000000000031', 'dana/APKA0000000000000032']);
      expect(iamMock).toHaveReceivedCommandTimes(GetSSHPublicKeyCommand, 1);
      expect(iamMock).not.toHaveReceivedCommandWith(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000031' });
    });

    it('makes no GetSSHPublicKey when every active body is known', async () => {
      iamMock.on(ListSSHPublicKeysCommand).resolves(listed(['APKA0000000000000031', 'Active']));
      const result = await directory().authorizedKeys('dana', { knownBody: () => body(3) });
      expect(result.keys.map((k) => k.line)).toEqual([body(3).line]);
      expect(result.fetched).toEqual([]);
      expect(iamMock).toHaveReceivedCommandTimes(GetSSHPublicKeyCommand, 0);
    });

    it('never prints a known body of an Inactive or unlisted key', async () => {
      iamMock
        .on(ListSSHPublicKeysCommand)
        .resolves(listed(['APKA0000000000000031', 'Inactive'], ['APKA0000000000000033', 'Active']));
      iamMock
        .on(GetSSHPublicKeyCommand, { SSHPublicKeyId: 'APKA0000000000000033' })
        .resolves(keyAnswer('dana', 'APKA0000000000000033', KEYS[5]!));
      const cached = new Map([
        ['APKA0000000000000031', body(3)],
        ['APKA0000000000000099', body(4)],
      ]);
      const asked: string[] = [];
      const result = await directory().authorizedKeys('dana', {
        knownBody: (_user, keyId) => {
          asked.push(keyId);
          return cached.get(keyId);
        },
      });
      expect(result.keys.map((k) => k.line)).toEqual([body(5).line]);
      // Only listed Active IDs are asked for; the cache cannot add a key.
      expect(asked).toEqual(['APKA0000000000000033']);
      expect(result.knownBodies).toBe(0);
    });
  });
});

describe('IamDirectory groups', () => {
  it('lists every page of prefixed groups and members', async () => {
    iamMock
      .on(ListGroupsCommand, { Marker: undefined })
      .resolves({
        Groups: [{ GroupName: 'keymaker_devs', GroupId: 'AGPADEVS', Path: '/', Arn: 'x', CreateDate: new Date() }],
        IsTruncated: true,
        Marker: 'g2',
      })
      .on(ListGroupsCommand, { Marker: 'g2' })
      .resolves({ Groups: [{ GroupName: 'admins', GroupId: 'AGPAADM', Path: '/', Arn: 'x', CreateDate: new Date() }] });
    iamMock
      .on(GetGroupCommand, { GroupName: 'keymaker_devs', Marker: undefined })
      .resolves({
        Group: undefined as never,
        Users: [{ UserName: 'u1', UserId: 'AIDA1', Path: '/', Arn: 'x', CreateDate: new Date() }],
        IsTruncated: true,
        Marker: 'u2',
      })
      .on(GetGroupCommand, { GroupName: 'keymaker_devs', Marker: 'u2' })
      .resolves({
        Group: undefined as never,
        Users: [{ UserName: 'u2', UserId: 'AIDA2', Path: '/', Arn: 'x', CreateDate: new Date() }],
      });
    const d = directory();
    const groups = await d.listLinuxGroups();
    expect(groups.map((g) => g.linuxName)).toEqual(['devs']);
    expect((await d.getGroupMembers('keymaker_devs')).map((u) => u.userName)).toEqual(['u1', 'u2']);
  });

  it('mirrors the sudo IAM group as keymaker-sudo, with the GID its unique ID derives', async () => {
    iamMock.on(ListGroupsCommand).resolves({
      Groups: [
        { GroupName: 'keymaker_devs', GroupId: 'AGPADEVS', Path: '/', Arn: 'x', CreateDate: new Date() },
        { GroupName: 'ops-admins', GroupId: 'AGPAOPSADMINS', Path: '/', Arn: 'x', CreateDate: new Date() },
      ],
    });
    const groups = await directory({ sudoIamGroup: 'ops-admins' }).listLinuxGroups();
    expect(groups.map((g) => [g.linuxName, g.groupName])).toEqual([
      ['devs', 'keymaker_devs'],
      ['keymaker-sudo', 'ops-admins'],
    ]);
    expect(groups[1]!.gid).toBe(unixIdFor('AGPAOPSADMINS', 'wide'));
    // Without the token the same group is not mirrored at all.
    expect((await directory().listLinuxGroups()).map((g) => g.linuxName)).toEqual(['devs']);
  });

  it('treats a truncated page without a marker as an error', async () => {
    iamMock.on(ListGroupsCommand).resolves({ Groups: [], IsTruncated: true });
    expect((await caught(directory().listGroups())).code).toBe('AWS_ERROR');
  });
});

describe('uploadSshPublicKey', () => {
  it('explains a full key quota (LimitExceeded)', async () => {
    iamMock
      .on(UploadSSHPublicKeyCommand)
      .rejects(serviceError('LimitExceededException', 'Cannot exceed quota for PublicKeysPerUser: 5'));
    const error = await caught(uploadSshPublicKey(new IAMClient({ region: 'us-east-1' }), 'alice', KEYS[5]!));
    expect(error.code).toBe('KEY_QUOTA_EXCEEDED');
    expect(error.message).toMatch(/already has 5 SSH keys.*delete_key/);
  });

  it('refuses a body that is not a public key before calling IAM', async () => {
    const error = await caught(
      uploadSshPublicKey(new IAMClient({ region: 'us-east-1' }), 'alice', '-----BEGIN OPENSSH PRIVATE KEY-----'),
    );
    expect(error.code).toBe('INVALID_SSH_KEY');
    expect(iamMock.calls()).toHaveLength(0);
  });
});

describe('resolveDirectory', () => {
  const role = 'arn:aws:sts::111111111111:assumed-role/web/i-0123';
  const clients = () => ({
    iam: new IAMClient({ region: 'us-east-1' }),
    sts: new STSClient({ region: 'us-east-1' }),
    iamClientFor: () => new IAMClient({ region: 'us-east-1' }),
  });

  it('reads the role config and assumes the ID-resolver role', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: role, Account: '111111111111' });
    iamMock.on(GetRoleCommand, { RoleName: 'web' }).resolves({
      Role: {
        Description: 'keymaker_id_resolver_account=222222222222 keymaker_id_resolver_iam_role=resolver',
        RoleName: 'web',
      } as never,
    });
    stsMock.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'a',
        SecretAccessKey: 'b',
        SessionToken: 'c',
        Expiration: new Date(Date.now() + 3600_000),
      },
    });
    const result = await resolveDirectory(clients());
    expect(result.crossAccount).toBe(true);
    expect(stsMock).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: 'arn:aws:iam::222222222222:role/resolver',
    });
  });

  it('fails closed when the role config cannot be read (never "no config")', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: role });
    iamMock.on(GetRoleCommand).rejects(serviceError('Throttling'));
    expect((await caught(resolveDirectory(clients()))).code).toBe('THROTTLED');
    iamMock.on(GetRoleCommand).rejects(serviceError('AccessDenied'));
    expect((await caught(resolveDirectory(clients()))).code).toBe('ACCESS_DENIED');
  });

  it('fails on an invalid role description', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: role });
    iamMock
      .on(GetRoleCommand)
      .resolves({ Role: { Description: 'keymaker_require_iam_group=a keymaker_require_iam_group=b' } as never });
    expect((await caught(resolveDirectory(clients()))).code).toBe('INVALID_ROLE_CONFIG');
  });

  it('reuses a cached config and credentials until they age out', async () => {
    const store = new Map<string, unknown>();
    const cache: CacheStore = {
      get: async (k) => structuredClone(store.get(k)),
      set: async (k, v) => void store.set(k, structuredClone(v)),
    };
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: role });
    iamMock.on(GetRoleCommand).resolves({
      Role: { Description: 'keymaker_id_resolver_account=222222222222 keymaker_id_resolver_iam_role=r' } as never,
    });
    stsMock.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'a',
        SecretAccessKey: 'b',
        SessionToken: 'c',
        Expiration: new Date(1_000_000 + 3600_000),
      },
    });
    let now = 1_000_000;
    const options = { ...clients(), cache, now: () => now };
    expect((await resolveDirectory(options)).cached).toEqual({ config: false, credentials: false });
    now += 60_000;
    expect((await resolveDirectory(options)).cached).toEqual({ config: true, credentials: true });
    // The cached copy is used only after STS confirms the same role is asking (issue 13); no GetRole.
    expect(stsMock).toHaveReceivedCommandTimes(GetCallerIdentityCommand, 2);
    expect(iamMock).toHaveReceivedCommandTimes(GetRoleCommand, 1);
    expect(stsMock).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    now += 10 * 60_000; // config TTL (5 min) passed; credentials still valid
    expect((await resolveDirectory(options)).cached).toEqual({ config: false, credentials: true });
    now += 50 * 60_000; // credentials within 5 minutes of expiry
    expect((await resolveDirectory(options)).cached.credentials).toBe(false);
    expect(stsMock).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
  });

  it('ignores a tampered cache entry', async () => {
    const cache: CacheStore = {
      get: async () => ({
        savedAt: Date.now(),
        source: 'role',
        caller: { arn: role },
        config: { requireIamGroup: 'bad group!' },
      }),
      set: async () => undefined,
    };
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: role });
    iamMock.on(GetRoleCommand).resolves({ Role: { Description: 'keymaker_require_iam_group=ops' } as never });
    const result = await resolveDirectory({ ...clients(), cache });
    expect(result.config.requireIamGroup).toBe('ops');
    expect(result.cached.config).toBe(false);
  });

  it('uses no role config for IAM user credentials', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:iam::111111111111:user/alice' });
    const result = await resolveDirectory(clients());
    expect(result.source).toBe('none');
    expect(iamMock).not.toHaveReceivedCommand(GetRoleCommand);
  });
});
