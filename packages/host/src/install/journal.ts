/*
 * /var/lib/keymaker/install-state.json (root, 0600): what install changed, so
 * uninstall can undo it byte for byte and a second install keeps the
 * pre-install originals. Written before each change (an intent log): after a
 * crash half-way, uninstall still knows every path that may have been touched.
 */
import * as crypto from 'node:crypto';
import * as path from 'node:path';
import { InputError } from '@keymaker/core';
import type { HostPaths } from '../system/paths';
import type { FileState } from '../system/host-system';

export interface JournalOriginal {
  base64: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface JournalFile {
  path: string;
  /** The file before the first install; null = it did not exist (uninstall deletes it). */
  original: JournalOriginal | null;
  /** sha256 (hex) of what install wrote; uninstall restores the original only while the file still holds it. */
  installedSha256: string;
  /** 'owned': the whole file is keymaker's. 'edited': keymaker's lines in somebody else's file (sshd_config, pam.d/sshd). */
  kind: 'owned' | 'edited';
}

export interface JournalDir {
  path: string;
  /** Removed with its contents on uninstall (keymaker's own cache); otherwise only when empty. */
  recursive: boolean;
}

export interface InstallJournal {
  version: 1;
  /** The lookup user; created=true when install created it (then uninstall removes it). */
  user: { name: string; created: boolean };
  files: JournalFile[];
  /** Directories install created, in creation order. */
  dirs: JournalDir[];
  /** A systemd timer install enabled. */
  systemdTimer?: string;
  /** Agent mode: the socket units install enabled, or the pid file of the agent it started detached. */
  agent?: { units: string[]; pidFile?: string };
  /** The EFS home share install mounts: its mount unit under systemd, else its fstab line (issue 15). */
  efsMount?: { mountPoint: string; unit?: string };
  /** System packages install added (libnss-systemd): uninstall leaves them installed and says so. */
  packages?: string[];
  /** The authselect profile (and features) selected before install made custom/CUSTOM: uninstall selects it again. */
  authselect?: { profile: string; features: string[]; custom: string };
}

/** An authselect profile ID or feature: never an option, never a path outside its profile directory. */
const AUTHSELECT_TOKEN = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9][A-Za-z0-9_.-]*)?$/;

export function journalPath(paths: HostPaths): string {
  return path.join(paths.stateDir, 'install-state.json');
}

export function sha256(content: Buffer | string): string {
  return crypto.createHash('sha256').update(content).digest('hex');
}

export function originalOf(state: FileState | undefined): JournalOriginal | null {
  return state ? { base64: state.content.toString('base64'), mode: state.mode, uid: state.uid, gid: state.gid } : null;
}

export function parseJournal(text: string, source: string): InstallJournal {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InputError(
      'INVALID_ARGUMENT',
      `${source} is not valid JSON; restore it from a backup or remove keymaker's files by hand`,
    );
  }
  const j = raw as Partial<InstallJournal>;
  const ok =
    j &&
    j.version === 1 &&
    typeof j.user?.name === 'string' &&
    typeof j.user.created === 'boolean' &&
    Array.isArray(j.files) &&
    j.files.every(
      (f) =>
        typeof f.path === 'string' &&
        path.isAbsolute(f.path) &&
        typeof f.installedSha256 === 'string' &&
        (f.kind === 'owned' || f.kind === 'edited') &&
        (f.original === null ||
          (typeof f.original?.base64 === 'string' &&
            typeof f.original.mode === 'number' &&
            typeof f.original.uid === 'number' &&
            typeof f.original.gid === 'number')),
    ) &&
    Array.isArray(j.dirs) &&
    j.dirs.every((d) => typeof d.path === 'string' && path.isAbsolute(d.path) && typeof d.recursive === 'boolean') &&
    (j.systemdTimer === undefined || typeof j.systemdTimer === 'string') &&
    (j.agent === undefined ||
      (Array.isArray(j.agent.units) &&
        j.agent.units.every((u) => typeof u === 'string') &&
        (j.agent.pidFile === undefined ||
          (typeof j.agent.pidFile === 'string' && path.isAbsolute(j.agent.pidFile))))) &&
    (j.efsMount === undefined ||
      (typeof j.efsMount.mountPoint === 'string' &&
        path.isAbsolute(j.efsMount.mountPoint) &&
        (j.efsMount.unit === undefined || /^[A-Za-z0-9:_.\\-]+\.mount$/.test(j.efsMount.unit)))) &&
    (j.packages === undefined ||
      (Array.isArray(j.packages) &&
        j.packages.every((p) => typeof p === 'string' && /^[a-z0-9][a-z0-9+.-]*$/.test(p)))) &&
    (j.authselect === undefined ||
      (typeof j.authselect.profile === 'string' &&
        AUTHSELECT_TOKEN.test(j.authselect.profile) &&
        typeof j.authselect.custom === 'string' &&
        /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(j.authselect.custom) &&
        Array.isArray(j.authselect.features) &&
        j.authselect.features.every((f) => typeof f === 'string' && AUTHSELECT_TOKEN.test(f))));
  if (!ok)
    throw new InputError(
      'INVALID_ARGUMENT',
      `${source} is not a keymaker install state file; restore it from a backup or remove keymaker's files by hand`,
    );
  return j as InstallJournal;
}

export function serializeJournal(journal: InstallJournal): string {
  return `${JSON.stringify(journal, null, 2)}\n`;
}
