import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteSSHPublicKeyCommand,
  GetSSHPublicKeyCommand,
  IAMClient,
  ListSSHPublicKeysCommand,
  UpdateSSHPublicKeyCommand,
  UploadSSHPublicKeyCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';
import type { CommandContext } from '../src/context';
import { deleteKey, listKeys, setKeyStatus, uploadKey } from '../src/commands/keys';

// --json on the key commands: one document on stdout, the same field names everywhere.
/** What the key commands print with --json (fingerprint from upload_key only). */
interface KeyJson {
  user: string;
  keyId: string;
  status: string;
  fingerprint?: string;
}

const iam = mockClient(IAMClient);
const KEY_ID = 'APKAEXAMPLEEXAMPLE12';
let dir: string;
// A real key and the fingerprint `ssh-keygen -l -E sha256` prints for it.
const publicKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBdA17RaN7C3YhOSgEZ8xUnUKN6FYVvbuwTpXOkaOQV alice@laptop';
const fingerprint = 'SHA256:z97iiOmr+mzUM8t1rDGE6r8WJbb5HEa29Hkj0unCozw';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'km-json-'));
  writeFileSync(join(dir, 'id.pub'), `${publicKey}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => iam.reset());

function context(json: boolean): { ctx: CommandContext; stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ctx = {
    options: { json },
    iam: () => new IAMClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } }),
    userOrCurrent: async (user: string | undefined) => user ?? 'alice',
    out: (line: string) => stdout.push(line),
    info: (line: string) => stderr.push(line),
  } as unknown as CommandContext;
  return { ctx, stdout, stderr };
}

describe('--json', () => {
  it('enable_key / disable_key print {user, keyId, status}, nothing on stderr', async () => {
    iam.on(UpdateSSHPublicKeyCommand).resolves({});
    for (const status of ['Active', 'Inactive'] as const) {
      const { ctx, stdout, stderr } = context(true);
      await setKeyStatus(ctx, { id: KEY_ID, user: 'bob' }, status);
      expect(stdout.map((line) => JSON.parse(line) as KeyJson)).toEqual([{ user: 'bob', keyId: KEY_ID, status }]);
      expect(stderr).toEqual([]);
    }
  });

  it('delete_key prints {user, keyId, status: "Deleted"} (user = the IAM user of the credentials without --user)', async () => {
    iam.on(DeleteSSHPublicKeyCommand).resolves({});
    const { ctx, stdout, stderr } = context(true);
    await deleteKey(ctx, { id: KEY_ID });
    expect(stdout.map((line) => JSON.parse(line) as KeyJson)).toEqual([
      { user: 'alice', keyId: KEY_ID, status: 'Deleted' },
    ]);
    expect(stderr).toEqual([]);
  });

  it('without --json the same commands keep stdout empty and say what they did on stderr', async () => {
    iam.on(UpdateSSHPublicKeyCommand).resolves({});
    const { ctx, stdout, stderr } = context(false);
    await setKeyStatus(ctx, { id: KEY_ID, user: 'bob' }, 'Inactive');
    expect(stdout).toEqual([]);
    expect(stderr).toEqual([`disabled key ${KEY_ID} of IAM user bob`]);
  });

  it('upload_key and list_keys use the same names: user, keyId, status, fingerprint', async () => {
    iam.on(UploadSSHPublicKeyCommand).resolves({
      SSHPublicKey: {
        SSHPublicKeyId: KEY_ID,
        Status: 'Active',
        UserName: 'bob',
        SSHPublicKeyBody: publicKey,
        Fingerprint: 'md5',
      },
    });
    const up = context(true);
    await uploadKey(up.ctx, { identity: join(dir, 'id.pub'), user: 'bob' });
    expect(up.stdout.map((line) => JSON.parse(line) as KeyJson)).toEqual([
      { user: 'bob', keyId: KEY_ID, status: 'Active', fingerprint },
    ]);

    const uploadDate = new Date('2026-01-02T03:04:05Z');
    iam.on(ListSSHPublicKeysCommand).resolves({
      SSHPublicKeys: [{ UserName: 'bob', SSHPublicKeyId: KEY_ID, Status: 'Active', UploadDate: uploadDate }],
    });
    iam.on(GetSSHPublicKeyCommand).resolves({
      SSHPublicKey: {
        UserName: 'bob',
        SSHPublicKeyId: KEY_ID,
        Status: 'Active',
        SSHPublicKeyBody: publicKey,
        Fingerprint: 'md5',
      },
    });
    const list = context(true);
    await listKeys(list.ctx, { user: 'bob' });
    expect(list.stdout).toHaveLength(1);
    expect(JSON.parse(list.stdout[0]!)).toEqual([
      {
        user: 'bob',
        keyId: KEY_ID,
        status: 'Active',
        type: 'ssh-ed25519',
        fingerprint,
        uploadDate: '2026-01-02T03:04:05.000Z',
      },
    ]);
  });
});
