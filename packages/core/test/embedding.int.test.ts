// packages/core/README.md's embedding examples, exactly as written there, run as an embedder would:
// @keymaker/core from its packed tarball in a fresh node_modules, next to the embedder's own AWS SDK
// (core's peer dependency), one ESM (.mjs) and one CommonJS (.cjs) consumer, against moto acting as
// the instance's IAM/STS.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createRoleWithDescription,
  createUserWithKeys,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  resetMoto,
  stsClient,
} from '../../../tools/moto/seed';

const CORE = path.join(__dirname, '..');
const REPO = path.join(CORE, '..', '..');

function readmeBlocks(): { esm: string; cjs: string } {
  const readme = fs.readFileSync(path.join(CORE, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const esm = blocks.find((b) => b.startsWith('// ESM'));
  const cjs = blocks.find((b) => b.startsWith('// CommonJS'));
  if (!esm || !cjs) throw new Error('packages/core/README.md: expected an "// ESM" and a "// CommonJS" js block');
  return { esm, cjs };
}

describe('embedding @keymaker/core as the README shows', () => {
  const endpoint = motoEndpoint();
  let tmp: string;
  let env: Record<string, string>;
  let aliceKey: string;

  beforeAll(async () => {
    if (!fs.existsSync(path.join(CORE, 'dist', 'index.cjs')))
      throw new Error('build @keymaker/core first (npx nx run @keymaker/core:build)');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-embed-'));
    // The tarball npm would publish (already built: skip prepack), unpacked where npm would put it.
    const tgz = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', tmp], {
      cwd: CORE,
      encoding: 'utf8',
    }).trim();
    const dest = path.join(tmp, 'node_modules', '@keymaker', 'core');
    fs.mkdirSync(dest, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(tmp, tgz), '-C', dest, '--strip-components=1']);
    // The embedder's own AWS SDK (the peer dependency), from this workspace's install.
    fs.mkdirSync(path.join(tmp, 'node_modules', '@aws-sdk'), { recursive: true });
    for (const name of ['client-iam', 'client-sts']) {
      fs.symlinkSync(
        path.join(REPO, 'node_modules', '@aws-sdk', name),
        path.join(tmp, 'node_modules', '@aws-sdk', name),
        'dir',
      );
    }
    const { esm, cjs } = readmeBlocks();
    fs.writeFileSync(path.join(tmp, 'consumer.mjs'), esm);
    fs.writeFileSync(path.join(tmp, 'consumer.cjs'), cjs);

    await resetMoto(endpoint);
    const iam = iamClient(endpoint);
    const pair = makeSshKeyPair(tmp, 'alice');
    aliceKey = pair.publicKey;
    await createUserWithKeys(iam, 'alice', [{ body: pair.publicKey, status: 'Active' }]);
    const role = await createRoleWithDescription(iam, 'web-fleet', 'Web fleet.');
    const creds = await instanceRoleCredentials(stsClient(endpoint), role.arn, 'i-0embed');
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: tmp,
      AWS_ENDPOINT_URL_IAM: endpoint,
      AWS_ENDPOINT_URL_STS: endpoint,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      ...(creds.sessionToken ? { AWS_SESSION_TOKEN: creds.sessionToken } : {}),
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("the package ships no SDK of its own: the embedder's is used", () => {
    const pkg = JSON.parse(
      fs.readFileSync(path.join(tmp, 'node_modules', '@keymaker', 'core', 'package.json'), 'utf8'),
    ) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
    };
    expect(Object.keys(pkg.peerDependencies ?? {}).sort()).toEqual(['@aws-sdk/client-iam', '@aws-sdk/client-sts']);
    expect(pkg.dependencies?.['@aws-sdk/client-iam']).toBeUndefined();
    expect(fs.existsSync(path.join(tmp, 'node_modules', '@keymaker', 'core', 'node_modules'))).toBe(false);
  });

  it.each(['consumer.mjs', 'consumer.cjs'])("%s prints alice's active key", (file) => {
    const run = spawnSync(process.execPath, [file], { cwd: tmp, env, encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe(aliceKey);
  });
});
