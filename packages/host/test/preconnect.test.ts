// Which IAM endpoint the loader opens connections to before the bundle loads (config/preconnect.ts):
// only what the host config names, or IAM's global endpoint where the SDK would use it; else none.
import { iamUrlFromHostConfig } from '../src/config/preconnect';

test.each([
  [
    'the configured https endpoint',
    { iamEndpoint: 'https://iam.example.test:8443/' },
    'https://iam.example.test:8443/',
  ],
  ['IAM global for a standard region', { region: 'eu-west-1' }, 'https://iam.amazonaws.com/'],
  ['IAM global without a region (the SDK signs for us-east-1)', {}, 'https://iam.amazonaws.com/'],
])('%s', (_what, config, url) => {
  expect(iamUrlFromHostConfig(JSON.stringify(config))?.href).toBe(url);
});

test.each([
  ['an http endpoint (nothing to pre-open over TLS)', { iamEndpoint: 'http://127.0.0.1:5000' }],
  ['a China region (another partition, another endpoint)', { region: 'cn-north-1' }],
  ['a GovCloud region', { region: 'us-gov-west-1' }],
  ['a region that is not one', { region: 'x; rm -rf' }],
  ['an endpoint that is not a URL', { iamEndpoint: 'not a url' }],
])('nothing for %s', (_what, config) => {
  expect(iamUrlFromHostConfig(JSON.stringify(config))).toBeUndefined();
});

test('nothing for a config that is not JSON', () => {
  expect(iamUrlFromHostConfig('{ broken')).toBeUndefined();
  expect(iamUrlFromHostConfig('null')).toBeUndefined();
});
