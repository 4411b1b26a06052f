#!/usr/bin/env node
// Seeds a moto server with the benchmark's account and writes what the measurements need as JSON.
//
//   node bench/seed.mjs --endpoint http://127.0.0.1:PORT --out bench/.work/seed.json [--users 1000] [--groups 50]
//
// Account (default account 123456789012, static test credentials):
//   - USERS IAM users: `alice` plus u0001..u0999 (USERS-1 of them);
//   - GROUPS groups keymaker_g00..keymaker_gNN; user i (alice is 0) is in group i % GROUPS, so each has
//     USERS/GROUPS members (20 by default) and every user is in exactly one prefixed group;
//   - group `ssh_users` (no prefix) holding alice: the role's required group;
//   - alice has 2 active and 1 inactive real ed25519 keys (ssh-keygen); u0001 has 1 active key but is not
//     in ssh_users (must be refused);
//   - role `bench-instance`, description
//     `keymaker_require_iam_group=ssh_users keymaker_uid_scheme=legacy` (1.x ignores the token it does not know);
//   - AssumeRole credentials for that role (session i-0bench0000000000): what an EC2 instance profile hands out;
//   - for the agent-mode rows: u0002 ("the agent's alice") has alice's three keys (same bodies and statuses) and
//     is in ssh_users, but gets no local account (the agent serves only names that have none); u0003..u0999 get
//     one shared active key (moto does not check duplicates), so that every user can resolve through the
//     agent; role `bench-agent-open` (description `keymaker_uid_scheme=legacy`, no required group) and its
//     credentials, for the agent's memory row (all 1,000 users resolved).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AddUserToGroupCommand,
  CreateGroupCommand,
  CreateRoleCommand,
  CreateUserCommand,
  DeleteUserCommand,
  IAMClient,
  UpdateSSHPublicKeyCommand,
  UploadSSHPublicKeyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

const ROLE_NAME = 'bench-instance';
const ROLE_DESCRIPTION = 'keymaker_require_iam_group=ssh_users keymaker_uid_scheme=legacy';
const OPEN_ROLE_NAME = 'bench-agent-open';
const OPEN_ROLE_DESCRIPTION = 'keymaker_uid_scheme=legacy';
const AGENT_USER = 'u0002';
const SESSION_NAME = 'i-0bench0000000000';
const CONCURRENCY = 12;

function parseArgs(argv) {
  const out = { users: 1000, groups: 50 };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--endpoint') out.endpoint = v;
    else if (k === '--out') out.out = v;
    else if (k === '--users') out.users = Number(v);
    else if (k === '--groups') out.groups = Number(v);
    else throw new Error(`unknown argument ${k}`);
    i++;
  }
  if (!out.endpoint || !out.out) throw new Error('usage: seed.mjs --endpoint URL --out FILE');
  return out;
}

/** keymaker 1.x's aws_to_unix_id on a little-endian machine (the "legacy" scheme). */
export function legacyUnixId(uniqueId) {
  const digest = createHash('sha256').update(uniqueId, 'utf8').digest();
  return 2000 + Math.floor(digest.readUInt16LE(digest.length - 2) / 2);
}

export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await fn(items[index], index);
      }
    }),
  );
  return results;
}

function keyDir2() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-bench-keys-'));
}
function makeKeyIn(dir, name) {
  try {
    return makeKey(dir, name);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function makeKey(dir, name) {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@bench`, '-f', file]);
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const clientOptions = {
    endpoint: args.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 5,
  };
  const iam = new IAMClient(clientOptions);
  const sts = new STSClient(clientOptions);
  const started = Date.now();

  const groupNames = Array.from({ length: args.groups }, (_, i) => `keymaker_g${String(i).padStart(2, '0')}`);
  const userNames = [
    'alice',
    ...Array.from({ length: args.users - 1 }, (_, i) => `u${String(i + 1).padStart(4, '0')}`),
  ];

  const groups = await mapLimit([...groupNames, 'ssh_users'], CONCURRENCY, async (name) => {
    const out = await iam.send(new CreateGroupCommand({ GroupName: name }));
    return { name, groupId: out.Group.GroupId, members: [] };
  });
  // 1,000 users in the legacy (15-bit) scheme collide about 15 times; keymaker serves only the first of
  // a UID (as it should), so the seed re-creates a user whose UID is taken, as an administrator would.
  const takenUids = new Set();
  let recreated = 0;
  const users = await mapLimit(userNames, CONCURRENCY, async (name, i) => {
    let out = await iam.send(new CreateUserCommand({ UserName: name }));
    while (takenUids.has(legacyUnixId(out.User.UserId))) {
      recreated += 1;
      await iam.send(new DeleteUserCommand({ UserName: name }));
      out = await iam.send(new CreateUserCommand({ UserName: name }));
    }
    takenUids.add(legacyUnixId(out.User.UserId));
    const group = groupNames[i % groupNames.length];
    await iam.send(new AddUserToGroupCommand({ GroupName: group, UserName: name }));
    return { name, userId: out.User.UserId, uid: legacyUnixId(out.User.UserId), group };
  });
  if (recreated > 0) console.error(`seed: re-created ${recreated} users whose legacy UID was taken`);
  for (const user of users) groups.find((g) => g.name === user.group).members.push(user.name);
  await iam.send(new AddUserToGroupCommand({ GroupName: 'ssh_users', UserName: 'alice' }));
  groups.find((g) => g.name === 'ssh_users').members.push('alice');

  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-bench-keys-'));
  const alice = { active: [], inactive: [] };
  try {
    for (const [i, status] of ['Active', 'Active', 'Inactive'].entries()) {
      const body = makeKey(keyDir, `alice-${i}`);
      const out = await iam.send(new UploadSSHPublicKeyCommand({ UserName: 'alice', SSHPublicKeyBody: body }));
      if (status === 'Inactive') {
        await iam.send(
          new UpdateSSHPublicKeyCommand({
            UserName: 'alice',
            SSHPublicKeyId: out.SSHPublicKey.SSHPublicKeyId,
            Status: 'Inactive',
          }),
        );
        alice.inactive.push(body);
      } else {
        alice.active.push(body);
      }
    }
  } finally {
    fs.rmSync(keyDir, { recursive: true, force: true });
  }

  // u0001: an active key but NOT in the required group: must be refused by both tools.
  const outsider = { name: 'u0001', key: makeKeyIn(keyDir2(), 'u0001') };
  await iam.send(new UploadSSHPublicKeyCommand({ UserName: outsider.name, SSHPublicKeyBody: outsider.key }));

  // The agent's alice: alice's key set on an IAM-only user in the required group.
  for (const [i, body] of [...alice.active, ...alice.inactive].entries()) {
    const out = await iam.send(new UploadSSHPublicKeyCommand({ UserName: AGENT_USER, SSHPublicKeyBody: body }));
    if (i >= alice.active.length)
      await iam.send(
        new UpdateSSHPublicKeyCommand({
          UserName: AGENT_USER,
          SSHPublicKeyId: out.SSHPublicKey.SSHPublicKeyId,
          Status: 'Inactive',
        }),
      );
  }
  await iam.send(new AddUserToGroupCommand({ GroupName: 'ssh_users', UserName: AGENT_USER }));
  groups.find((g) => g.name === 'ssh_users').members.push(AGENT_USER);
  const fleetKey = makeKeyIn(keyDir2(), 'fleet');
  const rest = users.filter((u) => !['alice', outsider.name, AGENT_USER].includes(u.name));
  await mapLimit(rest, CONCURRENCY, (u) =>
    iam.send(new UploadSSHPublicKeyCommand({ UserName: u.name, SSHPublicKeyBody: fleetKey })),
  );

  const trust = {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
  };
  /** A role with this description, and the credentials of an instance's session of it. */
  const roleSession = async (RoleName, Description) => {
    const created = await iam.send(
      new CreateRoleCommand({ RoleName, Description, AssumeRolePolicyDocument: JSON.stringify(trust) }),
    );
    const assumed = await sts.send(
      new AssumeRoleCommand({ RoleArn: created.Role.Arn, RoleSessionName: SESSION_NAME, DurationSeconds: 43200 }),
    );
    const c = assumed.Credentials;
    return {
      role: created.Role,
      credentials: {
        accessKeyId: c.AccessKeyId,
        secretAccessKey: c.SecretAccessKey,
        sessionToken: c.SessionToken,
        expiration: c.Expiration?.toISOString?.() ?? String(c.Expiration),
      },
    };
  };
  const { role, credentials } = await roleSession(ROLE_NAME, ROLE_DESCRIPTION);
  const { credentials: openCredentials } = await roleSession(OPEN_ROLE_NAME, OPEN_ROLE_DESCRIPTION);
  const { expiration: _ignored, ...sdkCredentials } = credentials;
  const asRole = new STSClient({ ...clientOptions, credentials: sdkCredentials });
  const identity = await asRole.send(new GetCallerIdentityCommand({}));
  if (!identity.Arn.includes(`assumed-role/${ROLE_NAME}/`))
    throw new Error(`unexpected caller ARN with role credentials: ${identity.Arn}`);

  const seed = {
    endpoint: args.endpoint,
    seededInMs: Date.now() - started,
    accountId: identity.Account,
    callerArn: identity.Arn,
    role: { name: ROLE_NAME, arn: role.Arn, description: ROLE_DESCRIPTION },
    credentials,
    requiredGroup: 'ssh_users',
    users,
    groups: groups.map((g) => ({ ...g, prefixed: g.name.startsWith('keymaker_'), gid: legacyUnixId(g.groupId) })),
    alice: { ...alice, uid: users[0].uid, userId: users[0].userId },
    outsider,
    agentUser: { name: AGENT_USER, uid: users.find((u) => u.name === AGENT_USER).uid },
    openRole: { name: OPEN_ROLE_NAME, description: OPEN_ROLE_DESCRIPTION, credentials: openCredentials },
  };
  fs.writeFileSync(args.out, `${JSON.stringify(seed, null, 2)}\n`);
  process.stderr.write(
    `seeded ${users.length} users, ${groupNames.length} prefixed groups, alice with ${alice.active.length}+${alice.inactive.length} keys in ${seed.seededInMs} ms\n`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    process.stderr.write(`seed failed: ${error.stack ?? error}\n`);
    process.exit(1);
  });
}
