import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSshPublicKey } from '../src/ssh-key';

const dir = mkdtempSync(join(tmpdir(), 'km-key-'));
let counter = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function realKey(type: string, bits?: number): { line: string; fingerprint: string } {
  const file = join(dir, `${type}${bits ?? ''}-${(counter += 1)}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    'me@laptop',
    '-f',
    file,
  ]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim();
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], {
    encoding: 'utf8',
  }).split(' ')[1]!;
  return { line, fingerprint };
}

describe('parseSshPublicKey', () => {
  it.each([['ed25519'], ['ecdsa'], ['rsa']])('accepts a real %s key and matches ssh-keygen fingerprint', (type) => {
    const { line, fingerprint } = realKey(type);
    const parsed = parseSshPublicKey(`${line}\n`);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.key.fingerprint).toBe(fingerprint);
    // The comment is dropped: exactly "type base64".
    expect(parsed.key.line).toBe(line.split(' ').slice(0, 2).join(' '));
  });

  const good = realKey('ed25519').line;
  const [type, data] = good.split(' ') as [string, string];
  const rsa = realKey('rsa').line.split(' ')[1]!;

  it.each([
    ['leading key options', `command="/bin/sh" ${good}`],
    ['embedded newline (second key)', `${type} ${data}\nssh-rsa ${rsa}`],
    ['carriage return', `${type} ${data}\rfoo`],
    ['unknown type', `ssh-foo ${data}`],
    ['bad base64', `${type} ${data.slice(0, -3)}!!!`],
    ['type mismatch', `ssh-ed25519 ${rsa}`],
    ['truncated blob', `${type} ${Buffer.from(Buffer.from(data, 'base64').subarray(0, 20)).toString('base64')}`],
    ['empty', ''],
    ['not text', 42],
  ])('refuses %s', (_name, body) => {
    expect(parseSshPublicKey(body).ok).toBe(false);
  });
});
