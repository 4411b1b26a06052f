// Homes on EFS (issue 15), the install side: the mount for both helpers (amazon-efs-utils, NFSv4.1), as a
// systemd unit or an fstab line, ordered before sshd and the agent; the session hook in PAM; uninstall's inverse.
import { agentInstallPaths } from '../src/install/agent-mode';
import {
  EFS_NFS_OPTIONS,
  efsDnsName,
  insertFstabBlock,
  mountUnitName,
  planEfsMount,
  removeFstabBlock,
} from '../src/install/efs-mount';
import { efsHomeSessionLine, MKHOMEDIR_LINE } from '../src/install/pam';
import { dirsToSnapshot, planInstall, planUninstall, type InstallSnapshot } from '../src/install/plan';
import type { InstallStep } from '../src/install/steps';
import type { FileState } from '../src/system/host-system';
import { DEFAULT_PATHS } from '../src/system/paths';
import { parseHostConfig } from '../src/config/host-config';

const P = DEFAULT_PATHS;
const SSHD = 'Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\nKbdInteractiveAuthentication no\n';
const PAM = '@include common-auth\naccount required pam_nologin.so\n@include common-session\n';
const FSTAB = '# /etc/fstab\nUUID=abcd / ext4 errors=remount-ro 0 1\n';
const NSS = 'passwd: files\ngroup: files\nshadow: files\n';
const state = (content: string): FileState => ({ content: Buffer.from(content), mode: 0o644, uid: 0, gid: 0 });

function snapshot(over: Partial<InstallSnapshot> = {}): InstallSnapshot {
  return {
    files: {
      [P.sshdConfig]: state(SSHD),
      [P.pamSshd]: state(PAM),
      [P.fstab]: state(FSTAB),
      [agentInstallPaths(P).nsswitch]: state(NSS),
    },
    sshdConfigDirEntries: [],
    systemdRunning: false,
    userExists: true,
    existingDirs: [
      '/',
      '/etc',
      '/etc/ssh',
      '/etc/ssh/sshd_config.d',
      '/etc/pam.d',
      '/usr',
      '/usr/local',
      '/var',
      '/home',
    ],
    nologinShell: '/usr/sbin/nologin',
    bundle: Buffer.from('// bundle\n'),
    nssSystemdLibrary: '/lib/x86_64-linux-gnu/libnss_systemd.so.2',
    setpriv: '/usr/bin/setpriv',
    ...over,
  };
}
const options = {
  paths: P,
  user: 'keymaker',
  nodePath: '/usr/bin/node',
  force: false,
  schedule: 'auto' as const,
  region: 'eu-west-1',
  efsHome: 'fs-0123456789abcdef0:/homes',
};
const content = (plan: ReturnType<typeof planInstall>, p: string) =>
  plan.files.find((f) => f.path === p)?.content.toString();
const kinds = (steps: InstallStep[]) =>
  steps.map((s) => (s.kind === 'validate' ? s.check : 'unit' in s ? `${s.kind}:${s.unit}` : s.kind));

describe('the EFS mount', () => {
  test('NFSv4.1 with EFS options and the regional DNS name when mount.efs is absent', () => {
    const m = planEfsMount({
      efsHome: 'fs-0123456789abcdef0:/homes',
      mountPoint: '/home/keymaker',
      region: 'eu-west-1',
      efsUtils: false,
      systemd: false,
      systemdDir: '/etc/systemd/system',
    });
    expect(m.fstabLine).toBe(
      'fs-0123456789abcdef0.efs.eu-west-1.amazonaws.com:/homes /home/keymaker nfs4 nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev 0 0',
    );
    expect(m.unit).toBeUndefined();
    expect(EFS_NFS_OPTIONS).toContain('noresvport');
    expect(efsDnsName('fs-01234567', 'cn-north-1')).toBe('fs-01234567.efs.cn-north-1.amazonaws.com.cn');
  });

  test('amazon-efs-utils with TLS when mount.efs exists: a systemd unit before sshd and the agent', () => {
    const m = planEfsMount({
      efsHome: 'fs-01234567',
      mountPoint: '/home/keymaker',
      efsUtils: true,
      systemd: true,
      systemdDir: '/etc/systemd/system',
    });
    expect(m.unit?.name).toBe('home-keymaker.mount');
    expect(m.unit?.path).toBe('/etc/systemd/system/home-keymaker.mount');
    const text = m.unit!.text;
    expect(text).toContain('\nWhat=fs-01234567:/\nWhere=/home/keymaker\nType=efs\nOptions=tls,_netdev\n');
    expect(text).toMatch(/\nBefore=ssh\.service sshd\.service keymaker-agent\.service keymaker-agent\.socket/);
    expect(text).toContain('\nAfter=network-online.target\n');
    expect(text).toContain('\nWantedBy=remote-fs.target\n');
  });

  test('the NFS helper needs a region; a bad EFS home is refused', () => {
    const base = { mountPoint: '/home/keymaker', efsUtils: false, systemd: true, systemdDir: '/etc/systemd/system' };
    expect(() => planEfsMount({ ...base, efsHome: 'fs-01234567' })).toThrow(/region is needed/);
    expect(() => planEfsMount({ ...base, efsHome: 'fs-1', region: 'eu-west-1' })).toThrow(/invalid EFS home/);
  });

  test('unit names are systemd-escape --path', () => {
    expect(mountUnitName('/home/keymaker')).toBe('home-keymaker.mount');
    expect(mountUnitName('/srv/efs-home/x')).toBe('srv-efs\\x2dhome-x.mount');
    expect(mountUnitName('/')).toBe('-.mount');
  });

  test("keymaker's fstab block comes out exactly, with or without a final newline", () => {
    for (const text of [FSTAB, FSTAB.trimEnd(), '']) {
      const withBlock = insertFstabBlock(text, 'a:/ /b nfs4 x 0 0');
      expect(withBlock).toContain('\na:/ /b nfs4 x 0 0\n');
      expect(insertFstabBlock(withBlock, 'a:/ /b nfs4 y 0 0')).not.toContain(' x 0 0');
      const back = removeFstabBlock(withBlock).text;
      expect(back).toBe(text.endsWith('\n') || text === '' ? text : `${text}\n`);
    }
  });
});

describe('install --efs-home', () => {
  test('without systemd: fstab block, mount point, mount before the sshd reload, the session hook in PAM', () => {
    const plan = planInstall(snapshot(), options);
    expect(content(plan, P.fstab)).toBe(
      `${FSTAB}# BEGIN keymaker efs home ("keymaker uninstall" removes this block)\nfs-0123456789abcdef0.efs.eu-west-1.amazonaws.com:/homes /home/keymaker nfs4 ${EFS_NFS_OPTIONS.join(',')} 0 0\n# END keymaker efs home\n`,
    );
    expect(plan.files.find((f) => f.path === P.fstab)?.kind).toBe('edited');
    expect(content(plan, P.pamSshd)).toContain(`\n${efsHomeSessionLine(P)}\n`);
    expect(content(plan, P.efsHomeCommand)).toContain(`${P.hostBundle} pam_efs_home "$@"`);
    expect(parseHostConfig(content(plan, P.configFile)!).efsHome).toBe('fs-0123456789abcdef0:/homes');
    const order = kinds(plan.steps);
    expect(order).toContain('makeDirectory');
    expect(plan.steps.find((s) => s.kind === 'makeDirectory' && s.path === '/home/keymaker')).toBeDefined();
    expect(order.indexOf('mountFilesystem')).toBeGreaterThan(order.lastIndexOf('writeFile'));
    expect(order.indexOf('mountFilesystem')).toBeLessThan(order.indexOf('reloadSshd'));
    expect(plan.steps.find((s) => s.kind === 'writeJournal' && s.stage === 'intent')).toMatchObject({
      journal: { efsMount: { mountPoint: '/home/keymaker' } },
    });
  });

  test('under systemd: the mount unit, enabled and started before the sshd reload', () => {
    const plan = planInstall(snapshot({ systemdRunning: true, efsUtils: true }), options);
    expect(content(plan, '/etc/systemd/system/home-keymaker.mount')).toContain('Type=efs');
    expect(content(plan, P.fstab)).toBeUndefined();
    const order = kinds(plan.steps);
    expect(order.indexOf('enableService:home-keymaker.mount')).toBeLessThan(order.indexOf('reloadSshd'));
    expect(order).not.toContain('mountFilesystem');
  });

  test('agent mode: the session hook instead of pam_mkhomedir', () => {
    const plan = planInstall(snapshot(), { ...options, mode: 'agent' as const });
    const pam = content(plan, P.pamSshd)!;
    expect(pam).toContain(efsHomeSessionLine(P));
    expect(pam).not.toContain(MKHOMEDIR_LINE);
    expect(plan.safePathTargets.map((t) => t.path)).toContain(P.efsHomeCommand);
  });

  test('install looks at the mount point and its parents, so /home is never planned as new', () => {
    expect(dirsToSnapshot(P)).toEqual(expect.arrayContaining(['/home', '/home/keymaker']));
    const plan = planInstall(
      snapshot({
        existingDirs: [
          '/',
          '/etc',
          '/etc/ssh',
          '/etc/ssh/sshd_config.d',
          '/etc/pam.d',
          '/usr',
          '/usr/local',
          '/var',
          '/home',
        ],
      }),
      options,
    );
    const made = plan.steps.flatMap((s) => (s.kind === 'makeDirectory' ? [s.path] : []));
    expect(made).toContain('/home/keymaker');
    expect(made).not.toContain('/home');
  });

  test('without --efs-home nothing of it is planned', () => {
    const plan = planInstall(snapshot(), { ...options, efsHome: undefined });
    expect(content(plan, P.fstab)).toBeUndefined();
    expect(content(plan, P.efsHomeCommand)).toBeUndefined();
    expect(content(plan, P.pamSshd)).not.toContain('pam_efs_home');
  });

  test('uninstall: unmounts, then fstab and pam.d/sshd come back byte for byte', () => {
    const plan = planInstall(snapshot(), options);
    const final = plan.steps.filter((s) => s.kind === 'writeJournal').pop();
    if (final?.kind !== 'writeJournal') throw new Error('no journal');
    const current = Object.fromEntries(plan.files.map((f) => [f.path, state(f.content.toString())]));
    const undo = planUninstall(final.journal, current, P, false);
    const steps = [...undo.switchOff, ...undo.cleanUp];
    const restored = (p: string) =>
      steps.flatMap((s) => (s.kind === 'restoreFile' && s.path === p ? [s.target?.content.toString()] : []));
    expect(restored(P.fstab)).toEqual([FSTAB]);
    expect(restored(P.pamSshd)).toEqual([PAM]);
    const order = kinds(steps);
    expect(order.indexOf('unmountFilesystem')).toBeLessThan(order.indexOf('restoreFile', order.indexOf('reloadSshd')));
    expect(steps.find((s) => s.kind === 'removeDirectory' && s.path === '/home/keymaker')).toBeDefined();
  });

  test('uninstall under systemd: the mount unit is stopped and disabled, then removed', () => {
    const plan = planInstall(snapshot({ systemdRunning: true }), options);
    const final = plan.steps.filter((s) => s.kind === 'writeJournal').pop();
    if (final?.kind !== 'writeJournal') throw new Error('no journal');
    const current = Object.fromEntries(plan.files.map((f) => [f.path, state(f.content.toString())]));
    const steps = planUninstall(final.journal, current, P, true).cleanUp;
    const order = kinds(steps);
    const unit = '/etc/systemd/system/home-keymaker.mount';
    const removal = steps.findIndex((s) => s.kind === 'restoreFile' && s.path === unit);
    expect(order.indexOf('disableService:home-keymaker.mount')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('disableService:home-keymaker.mount')).toBeLessThan(removal);
    expect(order).toContain('reloadServiceManager');
  });
});
