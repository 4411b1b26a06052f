/*
 * The key commands a person runs on a workstation (upload_key, list_keys, enable/disable/delete_key): where the
 * public key comes from (a file, ssh-agent, a default key), then one call in core.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  deleteSshPublicKey,
  InputError,
  listSshPublicKeysDetailed,
  setSshPublicKeyStatus,
  uploadSshPublicKey,
  type KeyListing,
} from '@keymaker/core';
import type { CommandContext } from '../context';

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 10_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 127) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A public key from a file; a private key file gives its public half through ssh-keygen -y. */
export async function publicKeyFromFile(path: string): Promise<string> {
  if (!existsSync(path))
    throw new InputError('FILE_NOT_FOUND', `key file ${path} does not exist; pass an existing file to --identity`);
  const text = readFileSync(path, 'utf8');
  if (text.includes('PRIVATE KEY')) {
    const result = await run('ssh-keygen', ['-y', '-f', path]);
    if (result.code !== 0) {
      throw new InputError(
        'INVALID_SSH_KEY',
        `ssh-keygen -y could not read the private key ${path}: ${result.stderr.trim() || `exit ${result.code}`}`,
      );
    }
    return result.stdout.trimEnd();
  }
  return text.trimEnd();
}

const DEFAULT_PUBLIC_KEYS = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'];

/** --identity FILE, else the one key in ssh-agent, else the first default key file. */
export async function selectPublicKey(identity: string | undefined, info: (line: string) => void): Promise<string> {
  if (identity) return publicKeyFromFile(identity);
  const agent = await run('ssh-add', ['-L']);
  if (agent.code === 0) {
    const keys = agent.stdout
      .split('\n')
      .map((line) => line.trimEnd())
      .filter(Boolean);
    if (keys.length > 1) {
      throw new InputError(
        'INVALID_ARGUMENT',
        `ssh-agent holds ${keys.length} keys; choose one with --identity FILE (or unload the others with "ssh-add -d")`,
      );
    }
    if (keys.length === 1) return keys[0]!;
  }
  for (const name of DEFAULT_PUBLIC_KEYS) {
    const path = join(homedir(), '.ssh', name);
    if (existsSync(path)) {
      info(`keymaker: using ${path} (no key in ssh-agent); pass --identity to choose another`);
      return publicKeyFromFile(path);
    }
  }
  throw new InputError(
    'FILE_NOT_FOUND',
    'no SSH key found in ssh-agent or ~/.ssh; create one with ssh-keygen, or pass --identity FILE',
  );
}

export async function uploadKey(ctx: CommandContext, args: { identity?: string; user?: string }): Promise<void> {
  const body = await selectPublicKey(args.identity, ctx.info);
  const user = await ctx.userOrCurrent(args.user);
  const uploaded = await uploadSshPublicKey(ctx.iam(), user, body);
  if (ctx.options.json)
    ctx.out(
      JSON.stringify({ user, keyId: uploaded.keyId, status: uploaded.status, fingerprint: uploaded.fingerprint }),
    );
  else ctx.out(`uploaded ${uploaded.fingerprint} for IAM user ${user} as ${uploaded.keyId} (${uploaded.status})`);
}

export function formatKeyTable(keys: KeyListing[]): string[] {
  const rows = keys.map((key) => [
    key.keyId,
    key.status,
    key.type ?? '?',
    key.fingerprint ?? `unusable: ${key.problem}`,
    key.uploadDate ? key.uploadDate.toISOString().slice(0, 19).replace('T', ' ') : '-',
  ]);
  const header = ['KEY ID', 'STATUS', 'TYPE', 'FINGERPRINT', 'UPLOADED (UTC)'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const format = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  return [format(header), ...rows.map(format)];
}

/** list_keys --json: one object per key, the same field names as the other key commands. */
export function keyJson(key: KeyListing): Record<string, unknown> {
  return {
    user: key.userName,
    keyId: key.keyId,
    status: key.status,
    type: key.type ?? null,
    fingerprint: key.fingerprint ?? null,
    uploadDate: key.uploadDate?.toISOString() ?? null,
    ...(key.problem ? { problem: key.problem } : {}),
  };
}

export async function listKeys(ctx: CommandContext, args: { user?: string }): Promise<void> {
  const user = await ctx.userOrCurrent(args.user);
  const keys = await listSshPublicKeysDetailed(ctx.iam(), user);
  if (ctx.options.json) {
    ctx.out(JSON.stringify(keys.map(keyJson)));
  } else if (keys.length === 0) {
    ctx.info(`IAM user ${user} has no SSH keys; add one with "keymaker upload_key"`);
  } else {
    for (const line of formatKeyTable(keys)) ctx.out(line);
  }
}

export async function setKeyStatus(
  ctx: CommandContext,
  args: { id: string; user?: string },
  status: 'Active' | 'Inactive',
): Promise<void> {
  const user = await ctx.userOrCurrent(args.user);
  await setSshPublicKeyStatus(ctx.iam(), user, args.id, status);
  if (ctx.options.json) ctx.out(JSON.stringify({ user, keyId: args.id, status }));
  else ctx.info(`${status === 'Active' ? 'enabled' : 'disabled'} key ${args.id} of IAM user ${user}`);
}

export async function deleteKey(ctx: CommandContext, args: { id: string; user?: string }): Promise<void> {
  const user = await ctx.userOrCurrent(args.user);
  await deleteSshPublicKey(ctx.iam(), user, args.id);
  if (ctx.options.json) ctx.out(JSON.stringify({ user, keyId: args.id, status: 'Deleted' }));
  else ctx.info(`deleted key ${args.id} of IAM user ${user}`);
}
