// Issue 13, points 8 and 12, on a real sshd: one client cannot lock out others (the PAM hook's
// limits are per source address and per name under a global bound; the lookup's per-name cache),
// and an unauthenticated client cannot tell an IAM user from a made-up name. IAM is moto behind
// tools/faults' proxy, which counts every IAM/STS request.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IAMClient } from '@aws-sdk/client-iam';
import { createSandbox, describeWithSandbox, type Sandbox } from '../../../tools/sandbox/sandbox';
import {
  createRoleWithDescription,
  createUserWithKeys,
  credentialsForAccount,
  iamClient,
  instanceRoleCredentials,
  makeSshKeyPair,
  motoEndpoint,
  stsClient,
} from '../../../tools/moto/seed';
import { DEFAULT_PATHS } from '../src/system/paths';
import {
  bundleEntry,
  buildHostBundle,
  hostConfigFor,
  installByHand,
  randomAccountId,
  sshOnTerminal,
  syslogLines,
} from './e2e-host';

import { createFaultProxy } from '../../../tools/faults/fault-proxy.cjs';

jest.setTimeout(240_000);

/** A real ssh client on a terminal from a chosen 127.x source address (e2e-host's sshOnTerminal). */
async function sshFrom(
  port: number,
  user: string,
  o: { bind: string; identityFile?: string },
): Promise<{ code: number; out: string }> {
  const r = await sshOnTerminal(port, user, o);
  return { code: r.code, out: r.stdout + r.stderr };
}

function randomName(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let name = letters[Math.floor(Math.random() * 26)]!;
  for (let i = 0; i < 9; i++) name += (letters + '0123456789')[Math.floor(Math.random() * 36)];
  return name;
}

async function passwdEntry(sb: Sandbox, name: string): Promise<string | undefined> {
  const r = await sb.exec(['getent', 'passwd', name]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

describeWithSandbox('one client cannot lock out others; no enumeration (issue 13, points 8 and 12)', () => {
  let sb: Sandbox;
  let bundle: string;
  let tmp: string;
  let driver: string;
  let iam: IAMClient;
  let port: number;
  let proxy: {
    url: string;
    stats(): { total: number; counts: Record<string, number> };
    resetStats(): void;
    stop(): Promise<void>;
  };
  const pair: Record<string, { privateKeyPath: string; publicKey: string }> = {};

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keymaker-one-client-e2e.'));
    for (const name of ['alice', 'carol', 'dora']) pair[name] = makeSshKeyPair(tmp, name);
    fs.chmodSync(tmp, 0o755);
    driver = await bundleEntry(path.join(__dirname, 'pam-flood-driver.ts'), path.join(tmp, 'pam-flood-driver.mjs'));
    bundle = await buildHostBundle();

    const endpoint = motoEndpoint();
    proxy = await createFaultProxy({ target: endpoint }).start();
    const admin = await credentialsForAccount(stsClient(endpoint), randomAccountId());
    iam = iamClient(endpoint, admin);
    const role = await createRoleWithDescription(iam, 'keymaker-instance', 'one-client e2e');
    const instance = await instanceRoleCredentials(stsClient(endpoint, admin), role.arn);
    for (const name of ['alice', 'carol', 'dora'])
      await createUserWithKeys(iam, name, [{ body: pair[name]!.publicKey, status: 'Active' }]);

    sb = await createSandbox();
    await installByHand(sb, bundle, hostConfigFor(proxy.url), instance);
    ({ port } = await sb.startSshd());
  });

  afterAll(async () => {
    await sb?.destroy();
    await proxy?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (bundle) fs.rmSync(path.dirname(bundle), { recursive: true, force: true });
  });

  test('point 12: without a key, an IAM user and a made-up name see the same thing, first and second time', async () => {
    const madeUp = 'zq7nobody';
    const seen = async (name: string) => {
      const r = await sshFrom(port, name, { bind: '127.0.0.3' });
      // The prompt names the user ("(carol@127.0.0.1) Password:"): that is the client's own input.
      // Blank lines are the test's own newlines echoed by the terminal, sent on a timer (not sshd's output).
      const out = r.out
        .split(name)
        .join('<user>')
        .replace(/\r/g, '')
        .split('\n')
        .map((l) => l.trimEnd())
        .filter(Boolean)
        .join('\n');
      return { code: r.code, out };
    };
    const carol1 = await seen('carol');
    const madeUp1 = await seen(madeUp);
    expect(carol1).toEqual(madeUp1);
    // What happened is in the log, not on the client's screen.
    expect(await passwdEntry(sb, 'carol')).toBeDefined();
    expect(await passwdEntry(sb, madeUp)).toBeUndefined();
    const log = await syslogLines(sb);
    expect(log.some((l) => /create_account user="carol" rhost="127\.0\.0\.3" decision=created/.test(l))).toBe(true);
    expect(
      log.some((l) =>
        new RegExp(`create_account user="${madeUp}" rhost="127\\.0\\.0\\.3" decision=refused reason=NO_SUCH_USER`).test(
          l,
        ),
      ),
    ).toBe(true);
    // Again: carol's account now exists, the made-up name is a remembered refusal; still the same.
    const carol2 = await seen('carol');
    const madeUp2 = await seen(madeUp);
    expect(carol2).toEqual(madeUp2);
    expect(carol1).toEqual(carol2);
    // carol logs in with her key.
    const login = await sshFrom(port, 'carol', { bind: '127.0.0.3', identityFile: pair.carol!.privateKeyPath });
    expect(login.out).toContain('carol');
    expect(login.code).toBe(0);
  });

  test('point 8: 50 wrong keys offered for one managed name cost a bounded number of IAM requests', async () => {
    // dora's account exists (created by the hook, as on a first login).
    await sb.exec([DEFAULT_PATHS.pamCreateAccountCommand], {
      env: { PAM_TYPE: 'auth', PAM_USER: 'dora', PAM_RHOST: '127.0.0.4', PAM_SERVICE: 'sshd' },
    });
    expect(await passwdEntry(sb, 'dora')).toBeDefined();
    const lookup = (fp: string) =>
      sb.exec(['runuser', '-u', 'keymaker', '--', DEFAULT_PATHS.authorizedKeysCommand, 'dora', fp]);
    proxy.resetStats();
    // What sshd runs for each offered key: the lookup with that key's fingerprint.
    const printed: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await lookup(`SHA256:${crypto.randomBytes(32).toString('base64').replace(/=+$/, '')}`);
      if (r.stdout !== '') printed.push(i);
    }
    const wrong = proxy.stats();
    console.log(
      `lookup: 50 wrong keys for dora cost ${wrong.total} IAM/STS requests ${JSON.stringify(wrong.counts)}; key list printed for offers ${JSON.stringify(printed)}`,
    );
    // One live lookup per 10 s (about 3 requests each) instead of one per offered key.
    expect(wrong.total).toBeLessThanOrEqual(12);
    // Only live answers print keys; the cached refusals print nothing.
    expect(printed.length).toBeLessThanOrEqual(4);
    // dora's own key is always looked up live (the cache only ever refuses) and logs in.
    const fp = (
      await sb.execOk(['bash', '-c', `ssh-keygen -lf ${pair.dora!.privateKeyPath}.pub | cut -d' ' -f2`])
    ).stdout.trim();
    const right = await lookup(fp);
    expect({ code: right.code, out: right.stdout.trim() }).toEqual({ code: 0, out: pair.dora!.publicKey });
    const login = await sshFrom(port, 'dora', { bind: '127.0.0.4', identityFile: pair.dora!.privateKeyPath });
    expect(login.code).toBe(0);
    const log = await syslogLines(sb);
    expect(
      log.some((l) =>
        /lookup user="dora" fingerprint=SHA256:\S+ decision=refused reason=NO_SUCH_KEY cached=yes/.test(l),
      ),
    ).toBe(true);
  });

  test('point 8: a flood of random names from one source does not stop a first login from another', async () => {
    await sb.execOk(['rm', '-f', '/run/keymaker/pam-state.json']);
    const names = new Set<string>();
    while (names.size < 1500) names.add(randomName());
    fs.writeFileSync(path.join(tmp, 'flood-names.json'), JSON.stringify([...names]));
    // The flood from 127.0.0.1 (what sshd would pass as PAM_RHOST), running while alice connects.
    const flood = sb.execOk(['node', driver, 'in-process', path.join(tmp, 'flood-names.json'), '4', '127.0.0.1'], {
      timeoutMs: 200_000,
    });
    await new Promise((r) => setTimeout(r, 4000));
    const first = await sshFrom(port, 'alice', { bind: '127.0.0.2', identityFile: pair.alice!.privateKeyPath });
    const floodDone = await flood;
    console.log(`flood from 127.0.0.1: exit codes ${floodDone.stdout.trim()}`);
    expect(first.out).toContain('connect again');
    expect(await passwdEntry(sb, 'alice')).toMatch(/^alice:/);
    const log = await syslogLines(sb);
    expect(log.some((l) => /create_account user="alice" rhost="127\.0\.0\.2" decision=created/.test(l))).toBe(true);
    expect(
      log.some((l) =>
        /create_account user="[a-z0-9]+" rhost="127\.0\.0\.1" decision=refused reason=RATE_LIMITED scope=source/.test(
          l,
        ),
      ),
    ).toBe(true);
    const second = await sshFrom(port, 'alice', { bind: '127.0.0.2', identityFile: pair.alice!.privateKeyPath });
    expect(second.code).toBe(0);
  });
});
