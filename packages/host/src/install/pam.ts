/*
 * /etc/pam.d/sshd: the just-in-time account hook. sshd runs the PAM auth stage
 * (through keyboard-interactive) even for a user it does not know, so a
 * pam_exec line there can create the account of a confirmed IAM user; the
 * connection still fails and the next one logs in. `optional` so the hook can
 * never let anybody in by itself.
 */
import type { HostPaths } from '../system/paths';
import type { RemovedLines } from './sshd-config';

export const PAM_COMMENT =
  '# keymaker: create the account of an IAM user at the first connection ("keymaker uninstall" removes this)';

export function pamHookLine(paths: HostPaths): string {
  return `auth optional pam_exec.so quiet stdout ${paths.pamCreateAccountCommand}`;
}

function isOurLine(line: string, paths: HostPaths): boolean {
  const t = line.trim();
  if (t === PAM_COMMENT) return true;
  const fields = t.split(/\s+/);
  return (
    !t.startsWith('#') &&
    fields.includes(paths.pamCreateAccountCommand) &&
    fields.some((f) => f.endsWith('pam_exec.so'))
  );
}

/**
 * Removes keymaker's comment and every line that runs keymaker's hook (its
 * command is keymaker's and uninstall deletes it); a hook line somebody changed
 * is named in a note. Everything else stays byte for byte.
 */
export function removePamHook(text: string, paths: HostPaths): RemovedLines {
  const notes: string[] = [];
  const kept = removeKeyBodiesSession(removeEfsHomeSession(removeMkhomedirSession(text), paths), paths)
    .split('\n')
    .filter((line) => {
      if (!isOurLine(line, paths)) return true;
      const t = line.trim();
      if (t !== PAM_COMMENT && t !== pamHookLine(paths))
        notes.push(`removed ${JSON.stringify(t)}: it runs keymaker's hook but is not the line keymaker wrote`);
      return false;
    });
  return { text: kept.join('\n'), notes };
}

export function stripPamHook(text: string, paths: HostPaths): string {
  return removePamHook(text, paths).text;
}

/**
 * Where the auth stage begins: the first `auth` line (also `-auth`), or the
 * first `@include` (Debian's `@include common-auth` holds the auth modules, and
 * any include may; PAM runs each stage in file order, so being earlier than a
 * non-auth include changes nothing).
 */
function firstAuthLine(lines: string[]): number {
  return lines.findIndex((line) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return false;
    const first = t.split(/\s+/)[0]!.toLowerCase();
    return first === 'auth' || first === '-auth' || first === '@include';
  });
}

/** Our hook before the first auth line, so nothing earlier in the stack can end the auth stage first. */
export function insertPamHook(text: string, paths: HostPaths): string {
  const lines = stripPamHook(text, paths).split('\n');
  let at = firstAuthLine(lines);
  if (at < 0) {
    at = lines.length;
    if (lines[at - 1] === '') at -= 1;
  }
  lines.splice(at, 0, PAM_COMMENT, pamHookLine(paths));
  return lines.join('\n');
}

/**
 * Agent mode's session line: the account exists through NSS before the login, so pam_mkhomedir in the session
 * stage makes the home (owner and mode from the record) on her first connection. Appended at the end of the file
 * with keymaker's comment, so removing both lines gives back the file byte for byte.
 */
export const MKHOMEDIR_COMMENT =
  '# keymaker: create the home of an IAM user at her first login ("keymaker uninstall" removes this)';
export const MKHOMEDIR_LINE = 'session optional pam_mkhomedir.so skel=/etc/skel umask=0077';

/** Removes keymaker's comment and the session line right after it; an administrator's own pam_mkhomedir stays. */
export function removeMkhomedirSession(text: string): string {
  const lines = text.split('\n');
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === MKHOMEDIR_COMMENT) {
      if (lines[i + 1]?.trim() === MKHOMEDIR_LINE) i++;
      continue;
    }
    kept.push(lines[i]!);
  }
  return kept.join('\n');
}

export function insertMkhomedirSession(text: string): string {
  const lines = removeMkhomedirSession(text).split('\n');
  const at = lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  lines.splice(at, 0, MKHOMEDIR_COMMENT, MKHOMEDIR_LINE);
  return lines.join('\n');
}

/**
 * Homes on EFS (issue 15): the session stage runs keymaker's home hook instead of pam_mkhomedir, in both modes.
 * `required`: while the share is not mounted, or the home is a symlink or somebody else's, the hook fails and so
 * does the session of a user whose home is on the share; other users' sessions are not its business (it exits 0).
 */
export const EFS_HOME_COMMENT =
  '# keymaker: check and create the home of an IAM user on the EFS share ("keymaker uninstall" removes this)';

export function efsHomeSessionLine(paths: HostPaths): string {
  return `session required pam_exec.so quiet type=open_session ${paths.efsHomeCommand}`;
}

export function removeEfsHomeSession(text: string, paths: HostPaths): string {
  const lines = text.split('\n');
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === EFS_HOME_COMMENT) {
      if (lines[i + 1]?.trim() === efsHomeSessionLine(paths)) i++;
      continue;
    }
    kept.push(lines[i]!);
  }
  return kept.join('\n');
}

export function insertEfsHomeSession(text: string, paths: HostPaths): string {
  const lines = removeEfsHomeSession(text, paths).split('\n');
  const at = lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  lines.splice(at, 0, EFS_HOME_COMMENT, efsHomeSessionLine(paths));
  return lines.join('\n');
}

/**
 * Compat mode's key-body writer (issue 14): the account hook's wrapper again, in the session stage, where it
 * starts a detached root worker that stores the bodies of her keys for the next login's lookup and exits 0 at
 * once (commands/host-commands.ts startKeyBodiesWorker). `optional` and always 0: it can neither refuse nor
 * delay a session. Appended at the end with keymaker's comment, so removing both lines restores the file.
 */
export const KEY_BODIES_COMMENT =
  '# keymaker: remember the key bodies of an IAM user for her next login ("keymaker uninstall" removes this)';

export function keyBodiesSessionLine(paths: HostPaths): string {
  return `session optional pam_exec.so quiet type=open_session ${paths.pamCreateAccountCommand}`;
}

export function removeKeyBodiesSession(text: string, paths: HostPaths): string {
  const lines = text.split('\n');
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === KEY_BODIES_COMMENT) {
      if (lines[i + 1]?.trim() === keyBodiesSessionLine(paths)) i++;
      continue;
    }
    kept.push(lines[i]!);
  }
  return kept.join('\n');
}

export function insertKeyBodiesSession(text: string, paths: HostPaths): string {
  const lines = removeKeyBodiesSession(text, paths).split('\n');
  const at = lines[lines.length - 1] === '' ? lines.length - 1 : lines.length;
  lines.splice(at, 0, KEY_BODIES_COMMENT, keyBodiesSessionLine(paths));
  return lines.join('\n');
}
