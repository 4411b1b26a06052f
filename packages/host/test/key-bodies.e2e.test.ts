// Compat mode's stored key bodies (issue 14) on a real sshd, installed by `keymaker install`: a login's PAM
// session hook stores her bodies (root-owned), the next lookup takes them instead of GetSSHPublicKey, a key made
// Inactive in IAM is not printed despite its stored body, and uninstall takes the session line and the files away.
import { expect } from '@jest/globals';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UpdateSSHPublicKeyCommand } from '@aws-sdk/client-iam';
import { createSandbox, describeWithSandbox, type ExecResult, type Sandbox } from '../../../tools/sandbox/sandbox';
import {
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
} from '../../../tools/moto/seed';
import { credentialsFileText, installArgs, randomAccountId } from './e2e-host';

jest.setTimeout(120_000);

const REPO_ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/keymaker.js');
const CACHE_DIR = '/var/cache/keymaker';
const SESSION_LINE = 'session optional pam_exec.so quiet type=open_session /usr/local/sbin/keymaker-create-account';
// key-body-store.ts keyBodiesCacheKey, spelled out: the file name is part of the on-disk format.
const BODIES_FILE = `${CACHE_DIR}/keys-${crypto.createHash('sha256').update('alice').digest('hex').slice(0, 40)}.json`;

function keymaker(sb: Sandbox, args: string[]): Promise<ExecResult> {
  return sb.exec(['node', CLI, ...args]);
}

/** The lookup as sshd runs it (the installed wrapper, as the lookup user), with its log line echoed (--debug). */
function lookupAsLookupUser(sb: Sandbox): Promise<ExecResult> {
  return sb.exec([
    'setpriv',
    '--reuid',
    'keymaker',
    '--regid',
    'keymaker',
    '--clear-groups',
    '/usr/local/sbin/keymaker-authorized-keys',
    'alice',
    '--debug',
  ]);
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describeWithSandbox('compat key bodies stored at login', () => {
  let sb: Sandbox | undefined;
  let tmp: string;
  beforeAll(() => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npx nx run-many -t build)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-bodies-e2e.'));
  });
  afterAll(async () => {
    await sb?.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the session hook stores her bodies; the next lookup fetches none; Inactive stays refused; uninstall cleans up', async () => {
    const endpoint = motoEndpoint();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    const iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-host', 'key bodies e2e host');
    const creds = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const alice = makeSshKeyPair(tmp, 'alice');
    const alice2 = makeSshKeyPair(tmp, 'alice2');
    const { keyIds } = await createUserWithKeys(iam, 'alice', [
      { body: alice.publicKey, status: 'Active' },
      { body: alice2.publicKey, status: 'Active' },
    ]);

    sb = await createSandbox();
    const originalPam = await sb.readFile('/etc/pam.d/sshd');
    await sb.writeFile('/root/aws-credentials', credentialsFileText(creds), 0o600);
    const { port } = await sb.startSshd();
    const install = await keymaker(sb, installArgs(endpoint, port));
    expect({ code: install.code, stderr: install.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect((await sb.readFile('/etc/pam.d/sshd')).split('\n')).toContain(SESSION_LINE);
    await new Promise((r) => setTimeout(r, 500)); // sshd's reload (SIGHUP)

    // The first connection creates the account (and fails); no session, so nothing stored yet.
    expect((await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' })).code).toBe(255);
    expect(await sb.exists(BODIES_FILE)).toBe(false);
    const cold = await lookupAsLookupUser(sb);
    expect(cold.code).toBe(0);
    expect(cold.stderr).toMatch(/keys=2 rejected_keys=0 cached_bodies=0 fetched_bodies=2/);
    // The unprivileged lookup never writes the store.
    expect(await sb.exists(BODIES_FILE)).toBe(false);

    // A login: its session stage starts the root worker, which stores both bodies.
    const login = await sb.ssh('alice', { identityFile: alice.privateKeyPath, command: 'id -un' });
    expect({ code: login.code, out: login.stdout.trim() }).toEqual({ code: 0, out: 'alice' });
    await waitFor(() => sb!.exists(BODIES_FILE), 'the stored bodies');
    expect((await sb.execOk(['stat', '-c', '%U:%G %a', BODIES_FILE])).stdout.trim()).toBe('root:keymaker 640');
    const stored = JSON.parse(await sb.readFile(BODIES_FILE)) as { iamUserName: string; bodies: object };
    expect({ user: stored.iamUserName, ids: Object.keys(stored.bodies).sort() }).toEqual({
      user: 'alice',
      ids: [...keyIds].sort(),
    });

    // The next lookup takes both bodies from the store: no GetSSHPublicKey (the second IAM wave) at all.
    const warm = await lookupAsLookupUser(sb);
    expect(warm.code).toBe(0);
    expect(warm.stderr).toMatch(/keys=2 rejected_keys=0 cached_bodies=2 fetched_bodies=0/);
    expect(warm.stdout.trim().split('\n')).toHaveLength(2);

    // A key made Inactive in IAM is not printed, though its body is still stored.
    await iam.send(
      new UpdateSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyId: keyIds[1]!, Status: 'Inactive' }),
    );
    expect(Object.keys((JSON.parse(await sb.readFile(BODIES_FILE)) as { bodies: object }).bodies)).toContain(keyIds[1]);
    const afterInactive = await lookupAsLookupUser(sb);
    expect(afterInactive.stderr).toMatch(/keys=1 rejected_keys=0 cached_bodies=1 fetched_bodies=0/);
    expect(afterInactive.stdout).toContain(alice.publicKey.split(' ')[1]);
    expect(afterInactive.stdout).not.toContain(alice2.publicKey.split(' ')[1]);
    const refused = await sb.ssh('alice', { identityFile: alice2.privateKeyPath, command: 'id -un', batch: true });
    expect(refused.code).toBe(255);

    // Uninstall: pam.d/sshd has its original bytes (no session line) and the stored bodies are gone.
    const uninstall = await keymaker(sb, ['uninstall', '--reload', 'none']);
    expect({ code: uninstall.code, stderr: uninstall.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(await sb.readFile('/etc/pam.d/sshd')).toBe(originalPam);
    expect(await sb.exists(CACHE_DIR)).toBe(false);
  });
});
