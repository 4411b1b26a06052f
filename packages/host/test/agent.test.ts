// The agent's composition with fakes: both sockets, SIGHUP reload, fail closed on an unreadable or
// unresolvable config, revocation at refresh, the status answer, shutdown removing the sockets.
import * as crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AwsError, resolveRoleConfig, unixIdFor, type IamDirectory, type SshPublicKey } from '@keymaker/core';
import { parseSshPublicKey } from '../../core/src/ssh-key';
import { bypassingUserdb, runAgent, type AgentDirectory, type RunningAgent } from '../src/agent/agent';
import type { DirectorySource } from '../src/agent/iam-identity-source';
import { RefusedError, type KeysSource } from '../src/agent/keys-server';
import type { LocalAccounts } from '../src/accounts/local-accounts';
import type { ProcessTable } from '../src/agent/end-sessions';
import type { RuntimeSystem } from '../src/system/runtime-system';
import { createMemorySyslog } from '../src/system/syslog';
import { call, httpGet as get } from './agent-client';

function ed25519Line(): string {
  const { publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')}`;
}

interface FakeIamUser {
  userId: string;
  keys: { keyId: string; line: string }[];
}

/** One table of IAM users behind both the directory source and the keys source, counting calls. */
class FakeIam {
  calls = 0;
  constructor(public users: Record<string, FakeIamUser>) {}

  directory(): DirectorySource {
    return {
      uidScheme: 'wide',
      user: async (name) => {
        this.calls++;
        const user = this.users[name];
        return user ? { iamUserName: name, userId: user.userId } : undefined;
      },
      hasActiveKey: async (name) => {
        this.calls++;
        return (this.users[name]?.keys.length ?? 0) > 0;
      },
      memberships: async () => {
        this.calls++;
        return { inRequiredGroup: true, groups: [] };
      },
    };
  }

  keys(): KeysSource {
    return {
      iamUserNameFor: (name) => name,
      listKeys: async (name) => {
        this.calls++;
        const user = this.users[name];
        if (!user) throw new AwsError('NO_SUCH_USER', `no such IAM user ${name}`);
        return user.keys.map((key) => ({ keyId: key.keyId, status: 'Active' as const }));
      },
      checkRequiredGroup: async (name) => {
        this.calls++;
        if (!this.users[name]) throw new RefusedError('NO_SUCH_USER', 'gone');
      },
      getKey: async (name, keyId): Promise<{ key?: SshPublicKey; reason?: string }> => {
        this.calls++;
        const key = this.users[name]?.keys.find((k) => k.keyId === keyId);
        if (!key) return { reason: 'gone' };
        const parsed = parseSshPublicKey(key.line);
        return parsed.ok ? { key: parsed.key } : { reason: parsed.reason };
      },
    };
  }
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}

const localAccounts = (names: string[]): LocalAccounts => ({
  user: async (name) =>
    names.includes(name)
      ? { name, uid: 1000, gid: 1000, gecos: '', home: `/home/${name}`, shell: '/bin/sh' }
      : undefined,
  userByUid: async () => undefined,
  group: async () => undefined,
  groupByGid: async () => undefined,
  users: async () => [],
  groups: async () => [],
});

describe('keymaker agent (composition, fakes)', () => {
  const SERVICE = 'io.keymaker.unittest';
  const aliceLine = ed25519Line();
  let dir: string;
  let configText: string | undefined;
  let roleConfig: Parameters<typeof resolveRoleConfig>[0];
  let connectFails: Error | undefined;
  let iam: FakeIam;
  let signals: EventEmitter;
  let syslog: ReturnType<typeof createMemorySyslog>;
  let agent: RunningAgent;
  let userdbSocket: string;
  let keysSocket: string;
  let processTable: { pid: number; uids: number[] }[];
  const processes: ProcessTable = {
    list: async () => processTable,
    kill: (pid) => {
      const before = processTable.length;
      processTable = processTable.filter((p) => p.pid !== pid);
      return processTable.length < before;
    },
  };

  const sys: RuntimeSystem = {
    run: async () => ({ code: 1, stdout: '', stderr: 'no processes in this test' }),
    readFile: async () => configText,
  };
  const record = (name: string) =>
    call(userdbSocket, 'io.systemd.UserDatabase.GetUserRecord', { service: SERVICE, userName: name });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-agent-'));
    userdbSocket = path.join(dir, SERVICE);
    keysSocket = path.join(dir, 'keys.sock');
    configText = JSON.stringify({ version: 1, reservedNames: ['reserved'] });
    roleConfig = {};
    connectFails = undefined;
    iam = new FakeIam({
      alice: { userId: 'AIDAALICE0000000001', keys: [{ keyId: 'APKAALICE0000000001', line: aliceLine }] },
    });
    signals = new EventEmitter();
    syslog = createMemorySyslog();
    processTable = [];
    agent = await start();
  });
  const start = () =>
    runAgent(
      { configFile: '/etc/keymaker/config.json', userdbSocket, keysSocket, refreshSeconds: 300 },
      {
        sys,
        syslog,
        signals,
        accounts: localAccounts(['carol']),
        statPath: async () => undefined,
        processes,
        connect: async () => {
          if (connectFails) throw connectFails;
          return { config: resolveRoleConfig(roleConfig), directory: {} as IamDirectory } satisfies AgentDirectory;
        },
        directorySource: () => iam.directory(),
        keysSource: () => iam.keys(),
      },
    );
  afterEach(async () => {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("homes on EFS: an IAM user's home is below the share's mount point (issue 15)", async () => {
    await agent.stop();
    configText = JSON.stringify({ version: 1, efsHome: 'fs-0123456789abcdef0' });
    agent = await start();
    const [reply] = await record('alice');
    expect(reply).toMatchObject({
      parameters: { record: { userName: 'alice', homeDirectory: '/home/keymaker/alice' } },
    });
  });

  test("the host config's login shell is the IAM users' shell (default /bin/bash)", async () => {
    expect((await record('alice'))[0]).toMatchObject({ parameters: { record: { shell: '/bin/bash' } } });
    await agent.stop();
    configText = JSON.stringify({ version: 1, loginShell: '/usr/bin/zsh' });
    agent = await start();
    expect((await record('alice'))[0]).toMatchObject({ parameters: { record: { shell: '/usr/bin/zsh' } } });
  });

  test('an IAM user resolves over Varlink and gets her keys; unknown, local and reserved names do not', async () => {
    const [reply] = await record('alice');
    expect(reply).toMatchObject({
      parameters: { record: { userName: 'alice', uid: unixIdFor('AIDAALICE0000000001', 'wide') } },
    });
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 200, body: `${aliceLine}\n` });
    expect((await record('nobody-here'))[0]).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect((await get(keysSocket, '/keys/nobody-here')).status).toBe(404);
    // A local account: no answer from the agent, and no IAM call for it.
    const before = iam.calls;
    expect((await record('carol'))[0]).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    // Not the agent's to answer: 421 sends the keys client to the compat lookup.
    expect(await get(keysSocket, '/keys/carol')).toEqual({ status: 421, body: '' });
    expect(iam.calls).toBe(before);
    expect(syslog.lines.some((l) => l.message.includes('refused carol: local-account'))).toBe(true);
    expect((await get(keysSocket, '/keys/reserved')).status).toBe(404);
    expect(syslog.lines.some((l) => /resolved alice \(IAM user alice, uid \d+/.test(l.message))).toBe(true);
  });

  test('a user deleted from IAM stops resolving and gets no keys after one refresh', async () => {
    expect((await record('alice'))[0]).toHaveProperty('parameters.record.userName', 'alice');
    expect((await get(keysSocket, '/keys/alice')).status).toBe(200);
    delete iam.users.alice;
    // Until the refresh the positive cache answers (the revocation delay is the refresh interval).
    expect((await record('alice'))[0]).toHaveProperty('parameters.record.userName', 'alice');
    // Her session (sshd's child and her shell) and another user's process are running.
    const uid = unixIdFor('AIDAALICE0000000001', 'wide');
    processTable = [
      { pid: 501, uids: [uid, uid, uid, uid] },
      { pid: 502, uids: [uid, uid, uid, uid] },
      { pid: 503, uids: [1000, 1000, 1000, 1000] },
    ];
    const report = await agent.refresh();
    expect(report?.revoked).toEqual([{ name: 'alice', iamUserName: 'alice', reason: 'no-iam-user' }]);
    expect((await record('alice'))[0]).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 404, body: '' });
    expect(
      syslog.lines.some((l) => l.message.includes(`revoked alice (IAM user alice, uid ${uid}): no-iam-user`)),
    ).toBe(true);
    await until(() => syslog.lines.some((l) => l.message.includes('ended 2 process(es)')));
    expect(processTable.map((p) => p.pid)).toEqual([503]);
    expect(agent.status().lastRefresh).toMatchObject({ checked: 1, revoked: 1 });
  });

  test('SIGHUP re-reads the config: unchanged keeps the caches, changed drops them', async () => {
    await record('alice');
    expect(agent.status().caches.users).toBe(1);
    signals.emit('SIGHUP');
    await agent.reload();
    expect(agent.status().caches.users).toBe(1);
    roleConfig = { linuxUserSuffix: '', requireIamGroup: 'ssh-users' };
    signals.emit('SIGHUP');
    await agent.reload();
    expect(agent.status()).toMatchObject({ state: 'serving', caches: { users: 0 } });
    expect(syslog.lines.some((l) => l.message.includes('configuration changed'))).toBe(true);
  });

  test('an unreadable host config or role description fails closed, logged, until it reads again', async () => {
    await record('alice');
    configText = '{ not json';
    signals.emit('SIGHUP');
    await agent.reload();
    expect(agent.status()).toMatchObject({ state: 'closed', caches: { users: 0 } });
    expect(agent.status().closedReason).toMatch(/configuration unreadable/);
    expect((await record('alice'))[0]).toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 503, body: '' });
    expect(syslog.lines.some((l) => l.level === 'err' && l.message.includes('serving nothing'))).toBe(true);

    configText = JSON.stringify({ version: 1 });
    connectFails = new Error('GetRole: AccessDenied');
    await agent.reload();
    expect(agent.status().state).toBe('closed');
    expect(agent.status().lastErrors.at(-1)?.message).toBe('GetRole: AccessDenied');

    connectFails = undefined;
    await agent.reload();
    expect(agent.status().state).toBe('serving');
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 200, body: `${aliceLine}\n` });
  });

  test('IAM throttling or timing out a re-read keeps the last configuration (bounded), a denial closes', async () => {
    await record('alice');
    connectFails = new AwsError('THROTTLED', 'GetRole: Rate exceeded');
    await agent.reload();
    expect(agent.status()).toMatchObject({ state: 'serving', caches: { users: 1 } });
    expect(await get(keysSocket, '/keys/alice')).toEqual({ status: 200, body: `${aliceLine}\n` });
    expect(syslog.lines.some((l) => l.message.includes('last configuration kept: GetRole: Rate exceeded'))).toBe(true);
    connectFails = new AwsError('ACCESS_DENIED', 'GetRole: AccessDenied');
    await agent.reload();
    expect(agent.status().state).toBe('closed');
  });

  test('GET /status on the keys socket reports version, uptime, caches and IAM calls', async () => {
    await get(keysSocket, '/keys/alice');
    const { status, body } = await get(keysSocket, '/status');
    expect(status).toBe(200);
    const parsed = JSON.parse(body) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      state: 'serving',
      version: '0.1.0',
      caches: { users: 1, keyBodies: 1 },
      sockets: { userdb: userdbSocket, keys: keysSocket },
    });
    expect((parsed.iam as { calls: number }).calls).toBeGreaterThanOrEqual(5);
    expect(typeof parsed.uptimeSeconds).toBe('number');
  });

  test('SIGTERM closes both sockets and removes their files', async () => {
    expect(fs.existsSync(userdbSocket) && fs.existsSync(keysSocket)).toBe(true);
    signals.emit('SIGTERM');
    await agent.stopped;
    expect(fs.existsSync(userdbSocket)).toBe(false);
    expect(fs.existsSync(keysSocket)).toBe(false);
    expect(signals.listenerCount('SIGHUP')).toBe(0);
  });

  test('getent runs bypass this agent in NSS (no self-loop); other commands are unchanged', async () => {
    const seen: string[][] = [];
    const inner: RuntimeSystem = {
      run: async (argv) => (seen.push(argv), { code: 2, stdout: '', stderr: '' }),
      readFile: (file) => sys.readFile(file),
    };
    const bypassed = bypassingUserdb(inner, SERVICE);
    await bypassed.run(['getent', 'passwd', 'alice']);
    await bypassed.run(['logger', '--', 'x']);
    expect(seen).toEqual([
      ['env', `SYSTEMD_BYPASS_USERDB=${SERVICE}`, 'getent', 'passwd', 'alice'],
      ['logger', '--', 'x'],
    ]);
  });
});
