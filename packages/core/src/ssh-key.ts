import { createHash } from 'node:crypto';

/**
 * SSH public key validation. A key body from IAM becomes an authorized_keys
 * line only when it is `<type> <base64>` (a comment after it is dropped), the
 * type is one OpenSSH knows, and the base64 decodes to a blob that names the
 * same type. Anything else (key options such as command="...", embedded line
 * breaks, a type mismatch) is refused: a key body must never be able to add
 * a second line or options to what sshd reads.
 */

const ECDSA_CURVES: Record<string, string> = {
  'ecdsa-sha2-nistp256': 'nistp256',
  'ecdsa-sha2-nistp384': 'nistp384',
  'ecdsa-sha2-nistp521': 'nistp521',
  'sk-ecdsa-sha2-nistp256@openssh.com': 'nistp256',
};

export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-dss',
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

export interface SshPublicKey {
  type: SshKeyType;
  /** Canonical base64 of the key blob. */
  base64: string;
  /** OpenSSH's SHA256:... fingerprint, as sshd's %f shows it. */
  fingerprint: string;
  /** `type base64`: exactly one authorized_keys line, without a newline. */
  line: string;
}

export type SshKeyParseResult = { ok: true; key: SshPublicKey } | { ok: false; reason: string };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_BODY = 16 * 1024;

/** Reads SSH wire-format strings (uint32 length + bytes) from a blob. */
function readStrings(blob: Buffer): Buffer[] | undefined {
  const fields: Buffer[] = [];
  let offset = 0;
  while (offset < blob.length) {
    if (offset + 4 > blob.length) return undefined;
    const length = blob.readUInt32BE(offset);
    offset += 4;
    if (length > blob.length - offset) return undefined;
    fields.push(blob.subarray(offset, offset + length));
    offset += length;
  }
  return fields;
}

export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export function parseSshPublicKey(body: unknown): SshKeyParseResult {
  if (typeof body !== 'string') return { ok: false, reason: 'key body is not text' };
  if (body.length > MAX_BODY) return { ok: false, reason: 'key body is too long' };
  const trimmed = body.replace(/[\s]+$/, '').replace(/^[ \t]+/, '');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(trimmed)) {
    return { ok: false, reason: 'key body contains a line break or control character' };
  }
  const fields = trimmed.split(/[ \t]+/);
  const [type, data] = fields;
  if (!type || !(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    return {
      ok: false,
      reason: `unknown key type or leading key options (${JSON.stringify((type ?? '').slice(0, 40))})`,
    };
  }
  if (!data || data.length % 4 !== 0 || !BASE64.test(data))
    return { ok: false, reason: 'key data is not valid base64' };
  const blob = Buffer.from(data, 'base64');
  if (blob.toString('base64') !== data) return { ok: false, reason: 'key data is not canonical base64' };
  const parts = readStrings(blob);
  if (!parts || parts.length < 2) return { ok: false, reason: 'key data is not an SSH public key blob' };
  if (parts[0]!.toString('latin1') !== type) {
    return {
      ok: false,
      reason: `key data is a ${JSON.stringify(parts[0]!.toString('latin1').slice(0, 40))} key, not ${type}`,
    };
  }
  const shapeProblem = checkShape(type as SshKeyType, parts);
  if (shapeProblem) return { ok: false, reason: shapeProblem };
  return {
    ok: true,
    key: { type: type as SshKeyType, base64: data, fingerprint: fingerprintOfBlob(blob), line: `${type} ${data}` },
  };
}

function checkShape(type: SshKeyType, parts: Buffer[]): string | undefined {
  switch (type) {
    case 'ssh-ed25519':
      return parts.length === 2 && parts[1]!.length === 32 ? undefined : 'malformed ed25519 key';
    case 'sk-ssh-ed25519@openssh.com':
      return parts.length === 3 && parts[1]!.length === 32 ? undefined : 'malformed sk-ed25519 key';
    case 'ssh-rsa':
      // e, n; OpenSSH refuses RSA keys under 1024 bits.
      return parts.length === 3 && parts[2]!.length >= 128 ? undefined : 'malformed or too short RSA key';
    case 'ssh-dss':
      return parts.length === 5 ? undefined : 'malformed DSA key';
    default: {
      const curve = ECDSA_CURVES[type];
      const expected = type.startsWith('sk-') ? 4 : 3;
      if (parts.length !== expected || parts[1]!.toString('latin1') !== curve) return `malformed ${type} key`;
      return undefined;
    }
  }
}
