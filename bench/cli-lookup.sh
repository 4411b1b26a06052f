#!/usr/bin/env bash
# How long `keymaker get_authorized_keys` takes per call against moto, through the
# installed-style CLI entry (dist/keymaker.js), with instance-role credentials and
# no cache: 20 cold processes, median and p95. Needs the build and the moto venv.
#   bash bench/cli-lookup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/moto/setup-venv.sh
coproc MOTO { exec node tools/moto/server.cjs; }
read -r endpoint <&"${MOTO[0]}"
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
export AWS_REGION=us-east-1 AWS_ENDPOINT_URL_IAM=$endpoint AWS_ENDPOINT_URL_STS=$endpoint \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
node --input-type=module - <<'JS'
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IAMClient, CreateUserCommand, UploadSSHPublicKeyCommand, CreateRoleCommand } from '@aws-sdk/client-iam';
import { STSClient, AssumeRoleCommand } from '@aws-sdk/client-sts';
const creds = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const iam = new IAMClient({ credentials: creds });
const dir = mkdtempSync(join(tmpdir(), 'km-clibench-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
await iam.send(new CreateUserCommand({ UserName: 'alice' }));
await iam.send(new UploadSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyBody: readFileSync(join(dir, 'k.pub'), 'utf8') }));
const role = (await iam.send(new CreateRoleCommand({ RoleName: 'web', Description: 'keymaker_uid_scheme=legacy', AssumeRolePolicyDocument: '{}' }))).Role;
const c = (await new STSClient({ credentials: creds }).send(new AssumeRoleCommand({ RoleArn: role.Arn, RoleSessionName: 'i-0' }))).Credentials;
// The lookup takes credentials and endpoints from a root-owned host config only (never the environment).
const host = mkdtempSync('/run/km-clibench-');
chmodSync(host, 0o755);
writeFileSync(join(host, 'credentials'), `[default]\naws_access_key_id = ${c.AccessKeyId}\naws_secret_access_key = ${c.SecretAccessKey}\naws_session_token = ${c.SessionToken}\n`, { mode: 0o600 });
writeFileSync(join(host, 'config.json'), JSON.stringify({ version: 1, iamEndpoint: process.env.AWS_ENDPOINT_URL_IAM, stsEndpoint: process.env.AWS_ENDPOINT_URL_STS, sharedCredentialsFile: join(host, 'credentials') }), { mode: 0o644 });
process.on('exit', () => rmSync(host, { recursive: true, force: true }));
const env = process.env;
const time = (argv) => { const t = performance.now(); const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8' }); if (r.status !== 0 && argv[1] !== '-e') throw new Error(r.stderr); return performance.now() - t; };
const series = (argv) => { for (let i = 0; i < 3; i++) time(argv); const v = Array.from({ length: 20 }, () => time(argv)).sort((a, b) => a - b); return `median ${v[10].toFixed(0)} ms, p95 ${v[18].toFixed(0)} ms`; };
console.log(`node -e 0:                                   ${series([process.execPath, '-e', '0'])}`);
console.log(`keymaker get_authorized_keys alice (CLI):    ${series([process.execPath, 'packages/cli/dist/keymaker.js', 'get_authorized_keys', 'alice', '--config', join(host, 'config.json')])}`);
JS
