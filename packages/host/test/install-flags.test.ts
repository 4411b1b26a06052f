// installOptionsFromFlags: install's flags as the CLI (and the install fault test) hand them to runInstall.
import { expect } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { explicitRegion } from '@keymaker/core';
import { installOptionsFromFlags } from '../src/install/install-flags';
import { DEFAULT_PATHS } from '../src/system/paths';

const noInstance = () => Promise.resolve(undefined);

describe('installOptionsFromFlags', () => {
  it("fills the CLI's defaults and the endpoints from the environment", async () => {
    const env = { AWS_ENDPOINT_URL_IAM: 'http://iam.test', AWS_ENDPOINT_URL_STS: '' };
    const options = await installOptionsFromFlags(
      { bundle: 'dist/keymaker-host.js' },
      { env, instanceRegion: noInstance },
    );
    expect(options).toEqual({
      paths: DEFAULT_PATHS,
      user: 'keymaker',
      nodePath: fs.realpathSync(process.execPath),
      force: false,
      schedule: 'auto',
      mode: undefined,
      syncIntervalMinutes: undefined,
      agentRefreshSeconds: undefined,
      region: undefined,
      iamEndpoint: 'http://iam.test',
      stsEndpoint: undefined,
      deadlineMs: undefined,
      profile: undefined,
      efsHome: undefined,
      bundleSource: path.resolve('dist/keymaker-host.js'),
      extraCaCerts: undefined,
      credentialsSource: undefined,
      sshd: '/usr/sbin/sshd',
      reload: 'auto',
      sshdPidFile: undefined,
      dryRun: false,
    });
  });

  it("keeps the environment's NODE_EXTRA_CA_CERTS for the agent only when it is an absolute path", async () => {
    const options = (NODE_EXTRA_CA_CERTS: string) =>
      installOptionsFromFlags(
        { bundle: 'dist/keymaker-host.js' },
        { env: { NODE_EXTRA_CA_CERTS }, instanceRegion: noInstance },
      );
    expect((await options('/etc/ssl/proxy-ca.pem')).extraCaCerts).toBe('/etc/ssl/proxy-ca.pem');
    expect((await options('proxy-ca.pem')).extraCaCerts).toBeUndefined();
  });

  it('takes the region by the one rule (flag, AWS_REGION, AWS_DEFAULT_REGION), then the instance', async () => {
    const region = async (flag: string | undefined, env: NodeJS.ProcessEnv, instance = 'eu-west-3') =>
      (await installOptionsFromFlags({ bundle: 'b', region: flag }, { env, instanceRegion: async () => instance }))
        .region;
    expect(await region('ap-south-1', { AWS_REGION: 'us-west-2' })).toBe('ap-south-1');
    expect(await region(undefined, { AWS_REGION: ' us-west-2 ', AWS_DEFAULT_REGION: 'eu-north-1' })).toBe('us-west-2');
    expect(await region(undefined, { AWS_REGION: '', AWS_DEFAULT_REGION: 'eu-north-1' })).toBe('eu-north-1');
    expect(await region(undefined, {})).toBe('eu-west-3');
    expect(await region('  ', { AWS_REGION: '' })).toBe('eu-west-3');
    // The same rule the clients use (core's explicitRegion), before their profile and us-east-1 fallbacks.
    expect(explicitRegion(undefined, { AWS_DEFAULT_REGION: 'eu-north-1' })).toEqual({
      region: 'eu-north-1',
      regionSource: 'AWS_DEFAULT_REGION',
    });
  });

  it('refuses a missing --node and a fractional number, naming the flag', async () => {
    await expect(
      installOptionsFromFlags({ bundle: 'b', node: '/nonexistent/node' }, { instanceRegion: noInstance }),
    ).rejects.toMatchObject({ code: 'FILE_NOT_FOUND', message: '--node /nonexistent/node not found' });
    await expect(
      installOptionsFromFlags({ bundle: 'b', syncInterval: 1.5 }, { instanceRegion: noInstance }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: '--sync-interval must be a whole number, got 1.5' });
  });
});
