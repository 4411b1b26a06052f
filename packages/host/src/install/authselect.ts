/**
 * Agent mode where authselect owns /etc/nsswitch.conf (RHEL-likes: the file is authselect's symlink into
 * /etc/authselect and is regenerated from the selected profile; a hand edit is lost on the next `authselect
 * apply-changes` and makes `authselect check` fail). The supported way to change it is a custom profile:
 * `authselect create-profile keymaker --base-on CURRENT`, systemd added to that profile's nsswitch.conf passwd,
 * group and shadow lines, then `authselect select custom/keymaker FEATURES...` (the current features kept).
 * Uninstall selects the previous profile with its features again and removes the custom profile, so the generated
 * files come back byte for byte. authselect 1.5.1 and later ship profiles whose three lines list systemd already:
 * then nothing is changed at all.
 */
import * as path from 'node:path';
import { firstLine, HostError } from '@keymaker/core';
import type { HostSystem } from '../system/host-system';
import { databasesWithoutSystemd, addSystemdToProfileNsswitch, type AgentNssDatabase } from './nsswitch';
import { restoreState } from './file-ops';

/** The profile keymaker creates: `custom/keymaker`. */
export const AUTHSELECT_PROFILE_NAME = 'keymaker';
const CUSTOM_DIR = '/etc/authselect/custom';
/** Where `create-profile --base-on NAME` looks, vendor profiles first (authselect's paths.h), for both prefixes. */
const PROFILE_DIRS = ['/usr/share/authselect', '/usr/local/share/authselect'];

export interface AuthselectState {
  /** `authselect current --raw`: the profile ID and its enabled features; undefined when it failed. */
  current?: { profile: string; features: string[] };
  /** Why `authselect current` gave nothing usable. */
  problem?: string;
  /** The current profile's nsswitch.conf template, undefined when it could not be found. */
  profileNsswitch?: string;
}

/** Install's part: the custom profile to create and select, and what to select again on uninstall. */
export interface AuthselectProfilePlan {
  /** `keymaker`, created in /etc/authselect/custom/keymaker. */
  name: string;
  baseOn: string;
  /** The custom profile's nsswitch.conf: the base's with systemd added. */
  nsswitch: string;
  features: string[];
  changed: AgentNssDatabase[];
}

export function customProfileDir(name: string): string {
  return path.join(CUSTOM_DIR, name);
}

/** The profile's directory as create-profile --base-on finds it: custom/NAME, else vendor, else default. */
function profileDirs(profile: string): string[] {
  if (profile.startsWith('custom/')) return [customProfileDir(profile.slice('custom/'.length))];
  return PROFILE_DIRS.flatMap((base) => [path.join(base, 'vendor', profile), path.join(base, 'default', profile)]);
}

/** A profile ID or feature as authselect prints them: nothing that could be read as an option or a path. */
const TOKEN = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9][A-Za-z0-9_.-]*)?$/;

export function gatherAuthselect(sys: HostSystem): AuthselectState {
  const r = sys.run(['authselect', 'current', '--raw']);
  const words = r.stdout.trim().split(/\s+/).filter(Boolean);
  if (r.code !== 0 || words.length === 0 || !words.every((w) => TOKEN.test(w)))
    return { problem: firstLine((r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).trim()) };
  const [profile, ...features] = words as [string, ...string[]];
  const template = profileDirs(profile)
    .map((dir) => sys.readFile(path.join(dir, 'nsswitch.conf')))
    .find((f) => f !== undefined);
  return {
    current: { profile, features },
    ...(template ? { profileNsswitch: template.content.toString('utf8') } : {}),
  };
}

/**
 * What agent mode needs from authselect, from the generated nsswitch.conf (`nsswitchText`): nothing when its passwd,
 * group and shadow lines list systemd, else the custom profile; or why it cannot be done.
 */
export function planAuthselect(
  state: AuthselectState,
  nsswitchText: string,
  nsswitchPath: string,
): { problem: string } | { problem?: undefined; profile?: AuthselectProfilePlan } {
  const missing = databasesWithoutSystemd(nsswitchText);
  if (missing.length === 0) return {};
  const managed = `${nsswitchPath} is managed by authselect`;
  if (!state.current) return { problem: `${managed} and authselect current failed (${state.problem ?? 'no output'})` };
  const { profile, features } = state.current;
  if (profile === `custom/${AUTHSELECT_PROFILE_NAME}`)
    return {
      problem: `${managed}, its profile ${profile} lacks systemd on ${missing.join(', ')} (edited since keymaker made it?); select another profile, or use --mode compat`,
    };
  if (state.profileNsswitch === undefined)
    return { problem: `${managed} and the nsswitch.conf of its profile ${profile} was not found` };
  const edit = addSystemdToProfileNsswitch(state.profileNsswitch);
  if (edit.blocked.length > 0)
    return {
      problem: `${managed} and its profile ${profile} has lines keymaker cannot add systemd to (${edit.blocked.map((b) => JSON.stringify(b.line)).join(', ')})`,
    };
  return {
    profile: { name: AUTHSELECT_PROFILE_NAME, baseOn: profile, nsswitch: edit.text, features, changed: edit.changed },
  };
}

function authselect(sys: HostSystem, args: string[]): void {
  const r = sys.run(['authselect', ...args]);
  if (r.code !== 0)
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `authselect ${args.join(' ')} failed: ${firstLine((r.stderr.trim() || r.stdout.trim()).trim())}`,
    );
}

/**
 * Creates and selects the custom profile; the undo selects the previous profile again and removes it. `select`
 * without --force refuses a configuration changed behind authselect's back (fail closed: nothing is overwritten).
 */
export function selectCustomProfile(sys: HostSystem, plan: AuthselectProfilePlan, log: (line: string) => void) {
  const dir = customProfileDir(plan.name);
  if (sys.lstat(dir))
    throw new HostError(
      'SYSTEM_COMMAND_FAILED',
      `the authselect profile custom/${plan.name} exists already (${dir}); remove it (or run keymaker uninstall), then install again`,
    );
  authselect(sys, ['create-profile', plan.name, '--base-on', plan.baseOn]);
  const undoCreate = () => sys.removeTree(dir);
  try {
    const file = path.join(dir, 'nsswitch.conf');
    const before = sys.readFile(file);
    restoreState(sys, file, {
      content: Buffer.from(plan.nsswitch),
      mode: before?.mode ?? 0o644,
      uid: before?.uid ?? 0,
      gid: before?.gid ?? 0,
    });
    authselect(sys, ['select', `custom/${plan.name}`, ...plan.features]);
  } catch (error) {
    undoCreate();
    throw error;
  }
  log(
    `selected the authselect profile custom/${plan.name} (${plan.baseOn} with systemd on ${plan.changed.join(', ')}${plan.features.length > 0 ? `; features ${plan.features.join(' ')}` : ''})`,
  );
  return () => restorePreviousProfile(sys, { profile: plan.baseOn, features: plan.features, custom: plan.name });
}

/** Uninstall (and a rollback): the previous profile with its features, then the custom profile removed. */
export function restorePreviousProfile(
  sys: HostSystem,
  previous: { profile: string; features: string[]; custom: string },
): void {
  const r = sys.run(['authselect', 'current', '--raw']);
  if (r.code === 0 && r.stdout.trim().split(/\s+/)[0] === `custom/${previous.custom}`)
    authselect(sys, ['select', previous.profile, ...previous.features]);
  sys.removeTree(customProfileDir(previous.custom));
}
