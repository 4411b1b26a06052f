// How the host config shapes the accounts compat mode makes: every command that creates one (the PAM hook,
// the sync's pre-provisioning) builds its shadow-utils door with shadowUtilsFor, so the EFS home base and the
// login shell reach useradd on every path.
import { expect } from '@jest/globals';
import { shadowUtilsFor } from '../src/commands/host-commands';
import { DEFAULT_HOST_CONFIG, parseHostConfig } from '../src/config/host-config';

function recorder() {
  const argvs: string[][] = [];
  const sys = {
    run: async (argv: string[]) => (argvs.push(argv), { code: 0, stdout: '', stderr: '' }),
    readFile: async () => undefined,
  };
  return { argvs, sys };
}
const account = {
  name: 'bob',
  uid: 2_000_007,
  gid: 2_000_007,
  privateGroup: 'create' as const,
  comment: 'IAM bob',
  groups: [],
};
const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

test('the login shell from the host config, /bin/bash without one', async () => {
  const { argvs, sys } = recorder();
  await shadowUtilsFor(sys, { ...DEFAULT_HOST_CONFIG, loginShell: '/usr/bin/zsh' }).addUser(account);
  await shadowUtilsFor(sys, { ...DEFAULT_HOST_CONFIG }).addUser(account);
  expect(after(argvs[0]!, '--shell')).toBe('/usr/bin/zsh');
  expect(after(argvs[1]!, '--shell')).toBe('/bin/bash');
});

test('with EFS homes, the account gets its home on the share and useradd makes none (no local home)', async () => {
  const { argvs, sys } = recorder();
  await shadowUtilsFor(sys, { ...DEFAULT_HOST_CONFIG, efsHome: 'fs-0123456789abcdef0' }).addUser(account);
  expect(after(argvs[0]!, '--home-dir')).toBe('/home/keymaker/bob');
  expect(argvs[0]).toContain('--no-create-home');
  expect(argvs[0]).not.toContain('--create-home');
});

test('a login shell that is not a plain absolute path is refused in the host config', () => {
  for (const bad of ['bash', '/bin/ba sh', '/bin/bash\n', '/bin/bash:x', '/bin/$(id)'])
    expect(() => parseHostConfig(JSON.stringify({ version: 1, loginShell: bad }))).toThrow(/loginShell/);
  expect(parseHostConfig(JSON.stringify({ version: 1, loginShell: '/usr/bin/fish' })).loginShell).toBe('/usr/bin/fish');
});
