import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { bareEnv, keymaker, writeHostConfig } from './cli-helpers';

jest.setTimeout(120_000);

// 50 lookups at once, for 5 different users: every process prints exactly its
// own user's keys (no mix-ups through a shared cache or interleaved output).
const ACCOUNT = '310000000201';

// The lookup's credentials and endpoints come from a root-owned host config only.
const asRoot = process.getuid?.() === 0 ? it : it.skip;

asRoot('50 concurrent lookups all print the right keys', async () => {
  const endpoint = motoEndpoint();
  const admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
  const iam = iamClient(endpoint, admin);
  const dir = mkdtempSync(join(tmpdir(), 'km-conc-'));
  try {
    const expected: Record<string, string> = {};
    for (const user of ['u0', 'u1', 'u2', 'u3', 'u4']) {
      const a = makeSshKeyPair(dir, `${user}a`);
      const b = makeSshKeyPair(dir, `${user}b`);
      await createUserWithKeys(iam, user, [
        { body: a.publicKey, status: 'Active' },
        { body: b.publicKey, status: 'Active' },
      ]);
      expected[user] = [a.publicKey, b.publicKey].sort().join('\n');
    }
    const role = await createRoleWithDescription(iam, 'web', 'keymaker_uid_scheme=legacy');
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    const host = writeHostConfig({ endpoint, credentials: instance, deadlineMs: 60_000 });
    const users = Array.from({ length: 50 }, (_, i) => `u${i % 5}`);
    const results = await Promise.all(
      users.map((user) => keymaker(['get_authorized_keys', user, '--config', host.configFile], bareEnv())),
    );
    host.cleanup();
    results.forEach((result, i) => {
      expect(result.code).toBe(0);
      expect(result.stdout.trim().split('\n').sort().join('\n')).toBe(expected[users[i]!]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
