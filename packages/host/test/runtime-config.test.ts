import { expect } from '@jest/globals';
import { DEFAULT_HOST_CONFIG } from '../src/config/host-config';
import { awsEnvironmentFor, awsOptionsFor, loadHostConfig } from '../src/config/host-aws';
import { parseSyncArgs, syncExitCode } from '../src/commands/host-commands';
import { EXIT_CODES } from '@keymaker/core';

const sys = (files: Record<string, string>) => ({
  run: async () => ({ code: 0, stdout: '', stderr: '' }),
  readFile: async (p: string) => files[p],
});

test('a missing host config means defaults; a broken one is an error (fail closed)', async () => {
  expect(await loadHostConfig(sys({}), '/etc/keymaker/config.json')).toEqual(DEFAULT_HOST_CONFIG);
  await expect(loadHostConfig(sys({ '/c': '{"deadlineMs": "soon"}' }), '/c')).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
});

test("a profile without a file of its own (it would mean root's ~/.aws) is refused when the config is read and when install writes it", async () => {
  await expect(loadHostConfig(sys({ '/c': '{"version":1,"profile":"km"}' }), '/c')).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
    message: expect.stringContaining('profile needs sharedCredentialsFile or sharedConfigFile'),
  });
  const ok = await loadHostConfig(
    sys({ '/c': '{"version":1,"profile":"km","sharedCredentialsFile":"/etc/keymaker/credentials"}' }),
    '/c',
  );
  expect(ok.profile).toBe('km');
});

test('the config, not the caller environment, points the SDK at credentials and metadata', () => {
  const config = {
    ...DEFAULT_HOST_CONFIG,
    sharedCredentialsFile: '/etc/keymaker/creds',
    profile: 'km',
    metadataEndpoint: 'http://127.0.0.1:9',
  };
  expect(awsEnvironmentFor(config)).toMatchObject({
    AWS_SHARED_CREDENTIALS_FILE: '/etc/keymaker/creds',
    AWS_PROFILE: 'km',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9',
    AWS_METADATA_SERVICE_NUM_ATTEMPTS: '1',
  });
});

test('per-request timeouts on the login path stay inside the deadline', () => {
  const options = awsOptionsFor({ ...DEFAULT_HOST_CONFIG, region: 'eu-west-1' }, 5000);
  expect(options.region).toBe('eu-west-1');
  expect(options.connectionTimeoutMs! + options.requestTimeoutMs!).toBeLessThan(5000);
});

test('sync_groups arguments and exit codes', () => {
  expect(parseSyncArgs(['--dry-run', '--json', '--config', '/x.json'])).toEqual({
    dryRun: true,
    json: true,
    config: '/x.json',
  });
  expect(parseSyncArgs(['--force'])).toBeUndefined();
  const base = { dryRun: false, changes: [], refused: [], skipped: [], failed: [], audit: [] };
  expect(syncExitCode(base)).toBe(0);
  expect(syncExitCode({ ...base, refused: [{ group: 'sudo', reason: 'x' }] })).toBe(EXIT_CODES.GROUP_NOT_MANAGED);
  expect(syncExitCode({ ...base, failed: ['x'] })).toBe(EXIT_CODES.SYNC_PARTIAL);
});
