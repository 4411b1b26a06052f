import { expect } from '@jest/globals';
import {
  createRoleWithDescription,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  motoEndpoint,
  stsClient,
} from '../../../tools/moto/seed';
import { bareEnv, keymaker, writeHostConfig } from './cli-helpers';

jest.setTimeout(60_000);

// `keymaker status` through the real CLI against moto, with a root-owned host config under /run
// whose credentials play the instance role. sshd -T is skipped (--skip-sshd): this test is about
// the host config, the identity and the role config, not the sandbox's sshd.
const ACCOUNT = '310000000411';
const EXIT_STATUS_PROBLEMS = 50;

interface Report {
  ok: boolean;
  exitCode: number;
  checks: Array<{
    id: string;
    status: string;
    summary: string;
    items: Array<{ name: string; value: string }>;
    error?: { code: string; message: string };
  }>;
}

const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
asRoot('keymaker status', () => {
  let endpoint: string;
  const hosts: Array<ReturnType<typeof writeHostConfig>> = [];

  /** A host config whose credentials are those of an instance role with this description. */
  async function hostWithRole(roleName: string, description: string): Promise<string> {
    const admin = await credentialsForAccount(stsClient(endpoint), ACCOUNT, 'admin');
    await createRoleWithDescription(iamClient(endpoint, admin), roleName, description);
    const role = await instanceRoleCredentials(stsClient(endpoint, admin), `arn:aws:iam::${ACCOUNT}:role/${roleName}`);
    const host = writeHostConfig({ endpoint, credentials: role });
    hosts.push(host);
    return host.configFile;
  }

  const run = (configFile: string, json: boolean) =>
    keymaker(
      ['status', '--config', configFile, '--skip-sshd', ...(json ? ['--json'] : [])],
      bareEnv({ AWS_EC2_METADATA_DISABLED: 'true' }),
    );

  beforeAll(() => {
    endpoint = motoEndpoint();
  });
  afterAll(() => hosts.forEach((host) => host.cleanup()));

  it('names a mistyped token (spaces around "=") with the parse error and exits STATUS_PROBLEMS', async () => {
    const configFile = await hostWithRole('status-bad', 'web servers keymaker_require_iam_group = ssh-users');
    const result = await run(configFile, true);
    expect(result.code).toBe(EXIT_STATUS_PROBLEMS);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.ok).toBe(false);
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId.hostConfig!.status).toBe('ok');
    expect(byId.credentials!.status).toBe('ok');
    expect(byId.credentials!.summary).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/status-bad/i-0123456789abcdef0`);
    expect(byId.roleConfig!.status).toBe('problem');
    expect(byId.roleConfig!.error).toEqual({
      code: 'INVALID_ROLE_CONFIG',
      message: expect.stringContaining(
        '"keymaker_require_iam_group = ssh-users" looks like a keymaker token but is not one: write it as keymaker_require_iam_group=ssh-users',
      ),
    });
    expect(byId.sshd!.status).toBe('skipped');

    const table = await run(configFile, false);
    expect(table.code).toBe(EXIT_STATUS_PROBLEMS);
    expect(table.stdout).toMatch(/^role config +problem +role status-bad: invalid keymaker configuration/m);
    expect(table.stdout).toContain('"keymaker_require_iam_group = ssh-users" looks like a keymaker token');
  });

  it('reports a well-formed description ok, token by token', async () => {
    const configFile = await hostWithRole('status-good', 'web servers keymaker_require_iam_group=ssh-users');
    const result = await run(configFile, true);
    const report = JSON.parse(result.stdout) as Report;
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId.hostConfig!.status).toBe('ok');
    expect(byId.credentials!.status).toBe('ok');
    expect(byId.roleConfig!).toMatchObject({
      status: 'ok',
      items: [{ name: 'keymaker_require_iam_group', value: 'ssh-users', ok: true }],
    });
    // Outside an installed host the install check is the only problem left (sshd skipped): the exit code says so.
    const problems = report.checks.filter((c) => c.status === 'problem').map((c) => c.id);
    expect(problems.filter((id) => id !== 'install' && id !== 'managedAccounts')).toEqual([]);
    expect(result.code).toBe(problems.length === 0 ? 0 : EXIT_STATUS_PROBLEMS);
    const table = await run(configFile, false);
    expect(table.stdout).toMatch(/^role config +ok +role status-good: 1 keymaker token/m);
    expect(table.stdout).toMatch(/keymaker_require_iam_group +ssh-users$/m);
  });

  it('a host config that is missing is a problem; the doctor alias runs the same checks', async () => {
    const result = await keymaker(
      ['doctor', '--config', '/run/keymaker-status-absent.json', '--skip-sshd', '--json', '--timeout', '5'],
      bareEnv({ AWS_EC2_METADATA_DISABLED: 'true' }),
    );
    expect(result.code).toBe(EXIT_STATUS_PROBLEMS);
    const report = JSON.parse(result.stdout) as Report;
    expect(report.checks[0]).toMatchObject({ id: 'hostConfig', status: 'problem' });
    expect(report.checks[1]!.status).toBe('problem');
  });
});
