/*
 * A user's own SSH keys in IAM (upload, list, enable, disable, delete): the calls `keymaker upload_key` and
 * friends make, with IAM's errors turned into what a person can act on.
 */
import {
  DeleteSSHPublicKeyCommand,
  GetSSHPublicKeyCommand,
  UpdateSSHPublicKeyCommand,
  UploadSSHPublicKeyCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { awsCall, requireString, unexpectedAnswer, type MissingEntity } from './aws';
import { AwsError, InputError, isKeymakerError } from './errors';
import { IamDirectory, type SshKeySummary } from './directory';
import { assertIamUserName } from './names';
import { resolveRoleConfig } from './role-config';
import { parseSshPublicKey } from './ssh-key';

/** IAM's per-user SSH key quota. */
export const SSH_KEY_QUOTA = 5;

const KEY_ID = /^APKA[A-Z0-9]{16,124}$|^[A-Za-z0-9]{16,128}$/;

function assertKeyId(keyId: string): string {
  if (!KEY_ID.test(keyId)) {
    throw new InputError(
      'INVALID_ARGUMENT',
      `invalid SSH key ID ${JSON.stringify(keyId)}: run "keymaker list_keys" to see the IDs`,
    );
  }
  return keyId;
}

/** Maps the errors of calls that name a user and a key to what a person can act on. */
async function keyCall<T>(
  operation: string,
  userName: string,
  keyId: string | undefined,
  run: () => Promise<T>,
): Promise<T> {
  const missing: MissingEntity = keyId
    ? {
        code: 'NO_SUCH_KEY',
        message: `no SSH key ${keyId} for IAM user ${userName}; run "keymaker list_keys --user ${userName}" to see the IDs`,
      }
    : { code: 'NO_SUCH_USER', message: `no such IAM user: ${userName}` };
  try {
    return await awsCall(operation, run, { missing });
  } catch (error) {
    if (isKeymakerError(error, 'LIMIT_EXCEEDED') && operation === 'UploadSSHPublicKey') {
      throw new AwsError(
        'KEY_QUOTA_EXCEEDED',
        `IAM user ${userName} already has ${SSH_KEY_QUOTA} SSH keys, the most IAM allows; delete one with "keymaker list_keys" and "keymaker delete_key ID"`,
        { cause: error, operation, awsCode: (error as AwsError).awsCode },
      );
    }
    throw error;
  }
}

export interface UploadedKey {
  keyId: string;
  status: string;
  fingerprint: string;
  userName: string;
}

export async function uploadSshPublicKey(iam: IAMClient, userName: string, body: string): Promise<UploadedKey> {
  assertIamUserName(userName);
  const parsed = parseSshPublicKey(body);
  if (!parsed.ok) throw new InputError('INVALID_SSH_KEY', `not an SSH public key: ${parsed.reason}`);
  const out = await keyCall('UploadSSHPublicKey', userName, undefined, () =>
    iam.send(new UploadSSHPublicKeyCommand({ UserName: userName, SSHPublicKeyBody: parsed.key.line })),
  );
  const key = out.SSHPublicKey;
  if (!key) throw unexpectedAnswer('UploadSSHPublicKey', 'no SSHPublicKey');
  return {
    keyId: requireString(key.SSHPublicKeyId, 'UploadSSHPublicKey', 'SSHPublicKeyId'),
    status: String(key.Status ?? 'Active'),
    fingerprint: parsed.key.fingerprint,
    userName,
  };
}

export interface KeyListing extends SshKeySummary {
  userName: string;
  type?: string;
  fingerprint?: string;
  /** Why the body is not usable at login, when it is not. */
  problem?: string;
}

/** Every key of a user, with type and fingerprint (bodies fetched in parallel). */
export async function listSshPublicKeysDetailed(iam: IAMClient, userName: string): Promise<KeyListing[]> {
  assertIamUserName(userName);
  const directory = new IamDirectory(iam, resolveRoleConfig({}));
  const summaries = await directory.listSshPublicKeys(userName);
  return Promise.all(
    summaries.map(async (summary) => {
      const body = await keyCall('GetSSHPublicKey', userName, summary.keyId, () =>
        iam.send(new GetSSHPublicKeyCommand({ UserName: userName, SSHPublicKeyId: summary.keyId, Encoding: 'SSH' })),
      );
      const parsed = parseSshPublicKey(body.SSHPublicKey?.SSHPublicKeyBody);
      const details: Pick<KeyListing, 'type' | 'fingerprint' | 'problem'> = parsed.ok
        ? { type: parsed.key.type, fingerprint: parsed.key.fingerprint }
        : { problem: parsed.reason };
      return { ...summary, userName, ...details };
    }),
  );
}

export async function setSshPublicKeyStatus(
  iam: IAMClient,
  userName: string,
  keyId: string,
  status: 'Active' | 'Inactive',
): Promise<void> {
  assertIamUserName(userName);
  assertKeyId(keyId);
  await keyCall('UpdateSSHPublicKey', userName, keyId, () =>
    iam.send(new UpdateSSHPublicKeyCommand({ UserName: userName, SSHPublicKeyId: keyId, Status: status })),
  );
}

export async function deleteSshPublicKey(iam: IAMClient, userName: string, keyId: string): Promise<void> {
  assertIamUserName(userName);
  assertKeyId(keyId);
  await keyCall('DeleteSSHPublicKey', userName, keyId, () =>
    iam.send(new DeleteSSHPublicKeyCommand({ UserName: userName, SSHPublicKeyId: keyId })),
  );
}
