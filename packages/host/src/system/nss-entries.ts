// The passwd and group lines getent(1) prints (and /etc/passwd, /etc/group hold), parsed in one
// place: install's user lookup, the sshd probes and the account reads all read them the same way.
// A line that is not exactly the format is undefined, never a half-read entry.
/** One passwd entry (getent passwd, /etc/passwd). */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export function parsePasswdLine(line: string): PasswdEntry | undefined {
  const fields = line.split(':');
  if (fields.length !== 7) return undefined;
  const [name, , uid, gid, gecos, home, shell] = fields as [string, string, string, string, string, string, string];
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid) || !name) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), gecos, home, shell };
}

export function parseGroupLine(line: string): GroupEntry | undefined {
  const fields = line.split(':');
  if (fields.length !== 4) return undefined;
  const [name, , gid, members] = fields as [string, string, string, string];
  if (!/^\d+$/.test(gid) || !name) return undefined;
  return { name, gid: Number(gid), members: members ? members.split(',').filter(Boolean) : [] };
}
