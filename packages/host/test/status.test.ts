import { expect } from '@jest/globals';
import { EXIT_CODES, parseRoleDescription, RoleConfigError } from '@keymaker/core';
import { DEFAULT_HOST_CONFIG } from '../src/config/host-config';
import { DEFAULT_PATHS } from '../src/system/paths';
import { assessStatus, formatStatusTable, mountOf, type StatusCheckId, type StatusFacts } from '../src/commands/status';

const AKC = DEFAULT_PATHS.authorizedKeysCommand;

/** Every check passing: a host installed by keymaker with a well-formed role description. */
function goodFacts(): StatusFacts {
  return {
    configFile: DEFAULT_PATHS.configFile,
    authorizedKeysCommand: AKC,
    hostConfig: { state: 'ok', config: { ...DEFAULT_HOST_CONFIG } },
    identity: {
      state: 'ok',
      caller: {
        arn: 'arn:aws:sts::123456789012:assumed-role/web/i-0123456789abcdef0',
        accountId: '123456789012',
        kind: 'assumed-role',
        name: 'web',
      },
    },
    roleConfig: { state: 'ok', roleName: 'web', config: { requireIamGroup: 'ssh-users', uidScheme: 'wide' } },
    sshd: {
      state: 'read',
      binary: '/usr/sbin/sshd',
      settings: {
        authorizedkeyscommand: `${AKC} %u %f`,
        authorizedkeyscommanduser: 'keymaker',
        usepam: 'yes',
        kbdinteractiveauthentication: 'yes',
        authenticationmethods: 'publickey keyboard-interactive:pam,publickey',
        pubkeyauthentication: 'yes',
      },
    },
    install: {
      state: 'installed',
      journal: '/var/lib/keymaker/install-state.json',
      files: 7,
      lookupUser: 'keymaker',
      mode: 'compat',
    },
    managedAccounts: { state: 'read', file: DEFAULT_PATHS.managedAccounts, count: 3, exists: true },
  };
}

function statuses(facts: StatusFacts): Record<StatusCheckId, string> {
  return Object.fromEntries(assessStatus(facts).checks.map((c) => [c.id, c.status])) as Record<StatusCheckId, string>;
}

/** The role-config fact core's parser gives for a description (the real parse error). */
function parsed(description: string): StatusFacts['roleConfig'] {
  try {
    return { state: 'ok', roleName: 'web', config: parseRoleDescription(description) };
  } catch (error) {
    if (!(error instanceof RoleConfigError)) throw error;
    return {
      state: 'error',
      roleName: 'web',
      error: { code: error.code, message: error.message },
      problems: (error.details.problems as string[]).map(String),
    };
  }
}

describe('assessStatus', () => {
  it('every check ok: exit 0, a readable table, camelCase JSON fields', () => {
    const report = assessStatus(goodFacts());
    expect(report.ok).toBe(true);
    expect(report.exitCode).toBe(0);
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['hostConfig', 'ok'],
      ['credentials', 'ok'],
      ['roleConfig', 'ok'],
      ['sshd', 'ok'],
      ['install', 'ok'],
      ['managedAccounts', 'ok'],
    ]);
    const table = formatStatusTable(report);
    expect(table).toMatch(/^host config +ok +\/etc\/keymaker\/config\.json$/m);
    expect(table).toMatch(/^credentials +ok +arn:aws:sts::123456789012:assumed-role\/web\/i-0123456789abcdef0$/m);
    expect(table).toMatch(/keymaker_require_iam_group +ssh-users$/m);
    expect(table).toMatch(/keymaker_uid_scheme +wide$/m);
    expect(table).toMatch(/managed accounts +ok +3 account\(s\)/m);
    expect(table.trimEnd().split('\n').pop()).toBe('status: ok');
    const json = JSON.parse(JSON.stringify(report)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['ok', 'exitCode', 'checks']);
    expect(Object.keys(report.checks[0]!)).toEqual(['id', 'title', 'status', 'summary', 'items']);
  });

  const failing: Array<[StatusCheckId, string, (f: StatusFacts) => void, RegExp]> = [
    ['hostConfig', 'missing', (f) => (f.hostConfig = { state: 'missing' }), /does not exist/],
    [
      'hostConfig',
      'refused',
      (f) =>
        (f.hostConfig = { state: 'refused', error: { code: 'UNSAFE_PATH', message: '/etc/keymaker is writable' } }),
      /refused: \/etc\/keymaker is writable/,
    ],
    [
      'credentials',
      'an STS error',
      (f) => {
        f.identity = { state: 'error', error: { code: 'NO_INSTANCE_ROLE', message: 'this instance has no IAM role' } };
        delete f.roleConfig;
      },
      /NO_INSTANCE_ROLE: this instance has no IAM role/,
    ],
    [
      'credentials',
      "a user's credentials, not a role's",
      (f) => {
        f.identity = {
          state: 'ok',
          caller: { arn: 'arn:aws:iam::123456789012:user/root-admin', accountId: '123456789012', kind: 'user' },
        };
        delete f.roleConfig;
      },
      /not a role's/,
    ],
    ['roleConfig', 'an invalid description', (f) => (f.roleConfig = parsed('keymaker_uid_scheme=narrow')), /narrow/],
    ['sshd', 'not installed', (f) => (f.sshd = { state: 'absent', binary: '/usr/sbin/sshd' }), /sshd not found/],
    [
      'sshd',
      'sshd -T failing',
      (f) => (f.sshd = { state: 'failed', binary: '/usr/sbin/sshd', reason: 'Missing privilege separation directory' }),
      /sshd -T failed .*Missing privilege/,
    ],
    [
      'sshd',
      "another program's AuthorizedKeysCommand",
      (f) => {
        if (f.sshd.state === 'read')
          f.sshd.settings.authorizedkeyscommand = '/usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f';
      },
      /another program's \(\/usr\/share\/ec2-instance-connect/,
    ],
    [
      'sshd',
      'UsePAM no',
      (f) => {
        if (f.sshd.state === 'read') f.sshd.settings.usepam = 'no';
      },
      /usepam is "no", not "yes"/,
    ],
    [
      'install',
      'not installed',
      (f) => (f.install = { state: 'absent', journal: '/var/lib/keymaker/install-state.json' }),
      /not installed/,
    ],
    [
      'managedAccounts',
      'a refused record',
      (f) =>
        (f.managedAccounts = {
          state: 'refused',
          file: DEFAULT_PATHS.managedAccounts,
          error: { code: 'UNSAFE_PATH', message: 'group-writable' },
        }),
      /refused: group-writable/,
    ],
  ];
  it.each(failing)(
    '%s failing alone (%s): its row is a problem and the exit code is STATUS_PROBLEMS',
    (id, _what, change, text) => {
      const facts = goodFacts();
      change(facts);
      const report = assessStatus(facts);
      expect(report.ok).toBe(false);
      expect(report.exitCode).toBe(EXIT_CODES.STATUS_PROBLEMS);
      const problems = report.checks.filter((c) => c.status === 'problem');
      expect(problems.map((c) => c.id)).toEqual([id]);
      expect(problems[0]!.summary).toMatch(text);
      const row = formatStatusTable(report)
        .split('\n')
        .find((line) => line.startsWith(problems[0]!.title));
      expect(row).toMatch(/ problem /);
    },
  );

  it('a refused host config skips the AWS checks (they cannot be made as the hooks make them)', () => {
    const facts = goodFacts();
    facts.hostConfig = { state: 'refused', error: { code: 'INVALID_ARGUMENT', message: 'unknown field "regoin"' } };
    delete facts.identity;
    delete facts.roleConfig;
    expect(statuses(facts)).toMatchObject({ hostConfig: 'problem', credentials: 'skipped', roleConfig: 'skipped' });
  });

  it('locked accounts are counted in the managed-accounts row, which stays ok (issue 12)', () => {
    const facts = goodFacts();
    facts.managedAccounts = { state: 'read', file: DEFAULT_PATHS.managedAccounts, count: 3, exists: true, locked: 2 };
    const row = assessStatus(facts).checks.find((c) => c.id === 'managedAccounts')!;
    expect(row).toMatchObject({
      status: 'ok',
      summary: expect.stringContaining(', 2 locked (their IAM user is gone)'),
    });
  });

  it('a skipped sshd check is no problem', () => {
    const facts = goodFacts();
    facts.sshd = { state: 'skipped' };
    const report = assessStatus(facts);
    expect(report.exitCode).toBe(0);
    expect(formatStatusTable(report)).toMatch(/^sshd +skipped +not checked \(--skip-sshd\)$/m);
  });

  it('a mistyped token (spaces around "=") is named with the parse error, in the table and in JSON (issue 13, point 3)', () => {
    const facts = goodFacts();
    facts.roleConfig = parsed('web servers keymaker_require_iam_group = ssh-users');
    expect(facts.roleConfig!.state).toBe('error');
    const report = assessStatus(facts);
    expect(report.exitCode).toBe(EXIT_CODES.STATUS_PROBLEMS);
    const row = report.checks.find((c) => c.id === 'roleConfig')!;
    expect(row.status).toBe('problem');
    expect(row.error?.code).toBe('INVALID_ROLE_CONFIG');
    const quoted = '"keymaker_require_iam_group = ssh-users" looks like a keymaker token but is not one';
    expect(row.error?.message).toContain(quoted);
    expect(row.items).toEqual([
      expect.objectContaining({ name: 'problem', ok: false, value: expect.stringContaining(quoted) }),
    ]);
    const table = formatStatusTable(report);
    expect(table).toContain(quoted);
    expect(table).toContain('keymaker_require_iam_group=ssh-users');
    expect(table).toMatch(/^role config +problem +role web: invalid keymaker configuration/m);
    const json = JSON.parse(JSON.stringify(report)) as { checks: Array<{ id: string; error?: { message: string } }> };
    expect(json.checks.find((c) => c.id === 'roleConfig')!.error!.message).toContain(quoted);
  });

  it('no keymaker tokens: ok, the defaults apply', () => {
    const facts = goodFacts();
    facts.roleConfig = parsed('a plain web server role');
    const row = assessStatus(facts).checks.find((c) => c.id === 'roleConfig')!;
    expect(row).toMatchObject({ status: 'ok', items: [] });
    expect(row.summary).toContain('no keymaker tokens');
  });
});

describe('the EFS home row (issue 15)', () => {
  it('shows the mount when homes live on EFS, and is a problem while nothing is mounted', () => {
    const mounted = assessStatus({
      ...goodFacts(),
      efsHome: {
        efsHome: 'fs-01234567',
        base: '/home/keymaker',
        mounted: true,
        source: 'fs-01234567.efs.eu-west-1.amazonaws.com:/',
        fstype: 'nfs4',
      },
    });
    expect(mounted.ok).toBe(true);
    expect(formatStatusTable(mounted)).toMatch(/^efs home +ok +mounted on \/home\/keymaker from fs-01234567\.efs/m);
    const missing = assessStatus({
      ...goodFacts(),
      efsHome: { efsHome: 'fs-01234567', base: '/home/keymaker', mounted: false },
    });
    expect(missing.ok).toBe(false);
    expect(missing.checks.pop()).toMatchObject({
      id: 'efsHome',
      status: 'problem',
      summary: expect.stringMatching(/managed logins are refused/),
    });
    expect(assessStatus(goodFacts()).checks.map((c) => c.id)).not.toContain('efsHome');
  });

  it('reads the source and type of the mount on top from mountinfo', () => {
    const info = [
      '22 1 0:21 / /home rw - tmpfs sandbox-home rw',
      '40 22 0:40 / /home/keymaker rw,nosuid - fuse.fuse-nfs fuse-nfs rw',
      '41 40 0:41 / /home/keymaker rw - nfs4 fs-1.efs.eu-west-1.amazonaws.com:/ rw',
      '42 1 0:42 / /with\\040space rw - tmpfs x rw',
    ].join('\n');
    expect(mountOf(info, '/home/keymaker')).toEqual({ fstype: 'nfs4', source: 'fs-1.efs.eu-west-1.amazonaws.com:/' });
    expect(mountOf(info, '/with space')).toEqual({ fstype: 'tmpfs', source: 'x' });
    expect(mountOf(info, '/nope')).toBeUndefined();
  });
});
