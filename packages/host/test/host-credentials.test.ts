// Issue 13 point 1 (a): the host's commands use only the credential source the host config names
// (the instance role through IMDS by default, or its credentials file and profile), never the
// caller's AWS_* variables or ~/.aws.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createIamClient, createStsClient } from '@keymaker/core';
import { DEFAULT_HOST_CONFIG, type HostConfig } from '../src/config/host-config';
import { applyAwsEnvironment, awsOptionsFor, hostCredentialProvider } from '../src/config/host-aws';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'km-host-creds-'));
const saved = { ...process.env };
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
  Object.assign(process.env, saved);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function ini(file: string, section: string, id: string): string {
  fs.writeFileSync(
    file,
    `[${section}]\naws_access_key_id = ${id}\naws_secret_access_key = secret-${id}\naws_session_token = token-${id}\n`,
  );
  return file;
}

/** What root's own login gives: AWS_* variables, a profile, and ~/.aws files of an IAM user. */
function rootsOwnCredentials(): void {
  const home = path.join(dir, 'root-home');
  fs.mkdirSync(path.join(home, '.aws'), { recursive: true });
  ini(path.join(home, '.aws', 'credentials'), 'default', 'AKIAROOTHOMEFILE');
  fs.writeFileSync(path.join(home, '.aws', 'config'), '[default]\nregion = eu-west-1\n');
  process.env.HOME = home;
  process.env.AWS_ACCESS_KEY_ID = 'AKIAROOTENVIRONMENT';
  process.env.AWS_SECRET_ACCESS_KEY = 'root-env-secret';
  process.env.AWS_SESSION_TOKEN = 'root-env-token';
  process.env.AWS_PROFILE = 'default';
}

/** A fake IMDSv2 answering the instance role's credentials. */
async function fakeImds(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.end('imds-token');
    if (req.url?.startsWith('/latest/meta-data/iam/security-credentials')) {
      if (req.url.endsWith('/')) return void res.end('keymaker-instance');
      res.setHeader('content-type', 'application/json');
      return void res.end(
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: 'ASIAINSTANCEROLE',
          SecretAccessKey: 's',
          Token: 't',
          Expiration: new Date(Date.now() + 3600_000).toISOString(),
        }),
      );
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test('applyAwsEnvironment drops every AWS_* variable of the caller and pins the shared files', () => {
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/bin',
    AWS_ACCESS_KEY_ID: 'AKIAX',
    AWS_SECRET_ACCESS_KEY: 'x',
    AWS_SESSION_TOKEN: 'x',
    AWS_PROFILE: 'admin',
    AWS_CONFIG_FILE: '/root/.aws/config',
    AWS_SHARED_CREDENTIALS_FILE: '/root/.aws/credentials',
    AWS_WEB_IDENTITY_TOKEN_FILE: '/tmp/token',
    AWS_ROLE_ARN: 'arn:aws:iam::1:role/x',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.2/x',
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/x',
    AWS_ENDPOINT_URL: 'http://evil.example',
    AWS_EC2_METADATA_DISABLED: 'true',
    KEYMAKER_DEADLINE_MS: '3000',
  };
  applyAwsEnvironment({ ...DEFAULT_HOST_CONFIG }, env);
  expect(
    Object.keys(env)
      .filter((key) => key.startsWith('AWS_'))
      .sort(),
  ).toEqual(
    [
      'AWS_CONFIG_FILE',
      'AWS_METADATA_SERVICE_NUM_ATTEMPTS',
      'AWS_METADATA_SERVICE_TIMEOUT',
      'AWS_SHARED_CREDENTIALS_FILE',
    ].sort(),
  );
  // No file of the caller's home is ever read by the SDK's loaders.
  expect(env.AWS_CONFIG_FILE).toBe('/dev/null');
  expect(env.AWS_SHARED_CREDENTIALS_FILE).toBe('/dev/null');
  expect(env).toMatchObject({ PATH: '/usr/bin', KEYMAKER_DEADLINE_MS: '3000' });

  const named: NodeJS.ProcessEnv = { AWS_PROFILE: 'admin' };
  applyAwsEnvironment(
    { ...DEFAULT_HOST_CONFIG, sharedCredentialsFile: '/etc/keymaker/credentials', profile: 'km' },
    named,
  );
  expect(named).toMatchObject({
    AWS_SHARED_CREDENTIALS_FILE: '/etc/keymaker/credentials',
    AWS_PROFILE: 'km',
    AWS_CONFIG_FILE: '/dev/null',
  });
});

test("with a credentials file in the host config, clients use it, not root's AWS_* variables or ~/.aws", async () => {
  rootsOwnCredentials();
  const config: HostConfig = {
    ...DEFAULT_HOST_CONFIG,
    region: 'us-east-1',
    sharedCredentialsFile: ini(path.join(dir, 'host-creds'), 'default', 'ASIAHOSTCONFIGFILE'),
  };
  for (const client of [createStsClient(awsOptionsFor(config)), createIamClient(awsOptionsFor(config, 5000))]) {
    expect((await client.config.credentials()).accessKeyId).toBe('ASIAHOSTCONFIGFILE');
  }
  // A named profile is read from the host config's file only.
  const profiled: HostConfig = {
    ...config,
    profile: 'km',
    sharedCredentialsFile: ini(path.join(dir, 'host-creds-km'), 'km', 'ASIAHOSTPROFILE'),
  };
  expect((await createStsClient(awsOptionsFor(profiled)).config.credentials()).accessKeyId).toBe('ASIAHOSTPROFILE');
});

test("with no credentials named, clients use the instance role (IMDS), not root's AWS_* variables or ~/.aws", async () => {
  const imds = await fakeImds();
  try {
    const config: HostConfig = { ...DEFAULT_HOST_CONFIG, region: 'us-east-1', metadataEndpoint: imds.url };
    applyAwsEnvironment(config);
    rootsOwnCredentials(); // even if set again after the scrub
    expect((await createStsClient(awsOptionsFor(config)).config.credentials()).accessKeyId).toBe('ASIAINSTANCEROLE');
  } finally {
    await imds.close();
  }
});

test("a profile with no credentials file in the host config is refused (it would mean root's ~/.aws)", async () => {
  rootsOwnCredentials();
  await expect(hostCredentialProvider({ ...DEFAULT_HOST_CONFIG, profile: 'default' })()).rejects.toThrow(
    /sharedCredentialsFile/,
  );
});
