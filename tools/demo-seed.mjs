// Seeds the demo's IAM in a moto server: an "instance role" for the host, and an IAM user with an
// SSH key. Prints nothing on success; writes the host's AWS credentials file.
//   node tools/demo-seed.mjs ENDPOINT IAM_USER PUBLIC_KEY_FILE CREDENTIALS_OUT
import * as fs from 'node:fs';
import { CreateRoleCommand, CreateUserCommand, IAMClient, UploadSSHPublicKeyCommand } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';

const [endpoint, userName, publicKeyFile, credentialsOut] = process.argv.slice(2);
if (!credentialsOut) {
  process.stderr.write('usage: node tools/demo-seed.mjs ENDPOINT IAM_USER PUBLIC_KEY_FILE CREDENTIALS_OUT\n');
  process.exit(2);
}
const client = { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
const iam = new IAMClient(client);
const sts = new STSClient(client);

const trust = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});
const role = await iam.send(
  new CreateRoleCommand({
    RoleName: 'keymaker-demo-host',
    Description: 'keymaker demo host',
    AssumeRolePolicyDocument: trust,
  }),
);
await iam.send(new CreateUserCommand({ UserName: userName }));
const body = fs.readFileSync(publicKeyFile, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
await iam.send(new UploadSSHPublicKeyCommand({ UserName: userName, SSHPublicKeyBody: body }));

// The host plays an EC2 instance with that role: its credentials come from the assumed role.
const c = (await sts.send(new AssumeRoleCommand({ RoleArn: role.Role.Arn, RoleSessionName: 'i-0demo0000000000' })))
  .Credentials;
fs.writeFileSync(
  credentialsOut,
  `[default]\naws_access_key_id = ${c.AccessKeyId}\naws_secret_access_key = ${c.SecretAccessKey}\naws_session_token = ${c.SessionToken}\n`,
  { mode: 0o600 },
);
