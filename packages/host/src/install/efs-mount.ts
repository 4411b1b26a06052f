/*
 * The EFS mount that holds managed users' homes (issue 15), planned purely: a systemd .mount unit where systemd
 * is PID 1, else a block in /etc/fstab that install mounts itself. amazon-efs-utils (`mount -t efs`, TLS through
 * its stunnel) when its mount.efs helper is installed, else the kernel's NFSv4.1 client with the options AWS
 * recommends for EFS. Ordered before sshd and the agent, so no managed login is served before the share is there
 * (and the login hooks refuse while it is not: fail closed, see accounts/efs-home.ts).
 */
import { InputError, parseEfsHome, type EfsHome } from '@keymaker/core';

/** AWS's recommended NFS client options for EFS, plus _netdev (wait for the network). */
export const EFS_NFS_OPTIONS = [
  'nfsvers=4.1',
  'rsize=1048576',
  'wsize=1048576',
  'hard',
  'timeo=600',
  'retrans=2',
  'noresvport',
  '_netdev',
];
/** amazon-efs-utils: TLS in transit; it finds the region and DNS name itself (instance metadata, efs-utils.conf). */
export const EFS_UTILS_OPTIONS = ['tls', '_netdev'];

/** The units the mount comes before: Debian's and RHEL's sshd, and the agent's (install/agent-units.ts). */
const BEFORE_UNITS = [
  'ssh.service',
  'sshd.service',
  'keymaker-agent.service',
  'keymaker-agent.socket',
  'keymaker-agent-keys.socket',
];

export interface EfsMountInput {
  /** FS_ID[:/PATH], validated (core's efsHomeProblem). */
  efsHome: string;
  /** Where to mount it (EFS_HOME_BASE unless the host config says otherwise). */
  mountPoint: string;
  /** Needed for the NFS DNS name; amazon-efs-utils finds it itself. */
  region?: string;
  /** amazon-efs-utils' mount.efs is installed. */
  efsUtils: boolean;
  /** systemd is PID 1: a .mount unit; otherwise an /etc/fstab line. */
  systemd: boolean;
  systemdDir: string;
}

export interface EfsMount {
  efs: EfsHome;
  helper: 'efs' | 'nfs4';
  /** What is mounted: FS_ID:/PATH (efs-utils) or the DNS name and path (NFS). */
  what: string;
  where: string;
  type: 'efs' | 'nfs4';
  options: string[];
  /** systemd only: the unit's name and file, and its text. */
  unit?: { name: string; path: string; text: string };
  /** Without systemd: the fstab line. */
  fstabLine?: string;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** EFS's DNS name in a region: FS_ID.efs.REGION.amazonaws.com (China regions end in .com.cn). */
export function efsDnsName(fileSystemId: string, region: string): string {
  return `${fileSystemId}.efs.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

/** systemd-escape --path: the unit name of a mount point ("/home/keymaker" -> "home-keymaker.mount"). */
export function mountUnitName(mountPoint: string): string {
  const trimmed = mountPoint.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '-.mount';
  const escaped = trimmed
    .split('/')
    .map((segment) =>
      [...Buffer.from(segment, 'utf8')]
        .map((byte, i) => {
          const c = String.fromCharCode(byte);
          return /[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0) ? c : `\\x${byte.toString(16).padStart(2, '0')}`;
        })
        .join(''),
    )
    .join('-');
  return `${escaped}.mount`;
}

export function planEfsMount(input: EfsMountInput): EfsMount {
  const efs = parseEfsHome(input.efsHome);
  const helper = input.efsUtils ? 'efs' : 'nfs4';
  let what: string;
  if (helper === 'efs') {
    what = `${efs.fileSystemId}:${efs.path}`;
  } else {
    if (!input.region || !REGION.test(input.region))
      throw new InputError(
        'INVALID_ARGUMENT',
        `the region is needed for the EFS DNS name (${efs.fileSystemId}.efs.REGION.amazonaws.com): pass --region, or run on EC2 where instance metadata has it`,
      );
    what = `${efsDnsName(efs.fileSystemId, input.region)}:${efs.path}`;
  }
  const options = helper === 'efs' ? EFS_UTILS_OPTIONS : EFS_NFS_OPTIONS;
  const mount: EfsMount = { efs, helper, what, where: input.mountPoint, type: helper, options };
  if (input.systemd) {
    const name = mountUnitName(input.mountPoint);
    mount.unit = { name, path: `${input.systemdDir}/${name}`, text: mountUnitText(mount) };
  } else {
    mount.fstabLine = `${what} ${input.mountPoint} ${helper} ${options.join(',')} 0 0`;
  }
  return mount;
}

function mountUnitText(m: Omit<EfsMount, 'unit'>): string {
  return [
    '# Written by "keymaker install --efs-home"; "keymaker uninstall" removes it.',
    '[Unit]',
    `Description=Keymaker: home directories of IAM users on EFS ${m.efs.fileSystemId}`,
    'Documentation=https://github.com/keymaker/keymaker#home-directories-on-efs',
    'Wants=network-online.target',
    'After=network-online.target',
    // Before sshd and the agent: no managed login is served before the homes are there.
    `Before=${BEFORE_UNITS.join(' ')}`,
    '',
    '[Mount]',
    `What=${m.what}`,
    `Where=${m.where}`,
    `Type=${m.type}`,
    `Options=${m.options.join(',')}`,
    'TimeoutSec=60',
    '',
    '[Install]',
    'WantedBy=remote-fs.target',
    '',
  ].join('\n');
}

export const FSTAB_BEGIN = '# BEGIN keymaker efs home ("keymaker uninstall" removes this block)';
export const FSTAB_END = '# END keymaker efs home';

/** Takes keymaker's block (and only it) out of fstab; everything else stays byte for byte. */
export function removeFstabBlock(text: string): { text: string; notes: string[] } {
  const lines = text.split('\n');
  const kept: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== FSTAB_BEGIN) {
      kept.push(lines[i]!);
      continue;
    }
    const end = lines.indexOf(FSTAB_END, i + 1);
    if (end < 0) {
      notes.push("keymaker's fstab block has no end line; removed only its first line");
      continue;
    }
    if (end - i !== 2) notes.push(`keymaker's fstab block held ${end - i - 1} lines; removed them all`);
    i = end;
  }
  return { text: kept.join('\n'), notes };
}

/** fstab with keymaker's block (one line) at the end, replacing an earlier one. */
export function insertFstabBlock(text: string, line: string): string {
  const base = removeFstabBlock(text).text;
  const body = base === '' || base.endsWith('\n') ? base : `${base}\n`;
  return `${body}${FSTAB_BEGIN}\n${line}\n${FSTAB_END}\n`;
}

/** The path of mount.efs when amazon-efs-utils is installed. */
export const MOUNT_EFS_HELPERS = ['/sbin/mount.efs', '/usr/sbin/mount.efs'];
