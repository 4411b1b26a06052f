// The sudoers writer against the real visudo (Debian package sudo, installed by tools/sandbox/install-deps.sh).
// Files go to a temp directory; the machine's own /etc/sudoers is only read by `visudo -c`.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeHostSystem, type HostSystem } from '../src/system/host-system';
import { sudoersDropIn, writeSudoersFile } from '../src/install/sudoers';

const hasVisudo = spawnSync('visudo', ['-V']).status === 0;
const maybe = hasVisudo && process.getuid?.() === 0 ? test : test.skip;

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'keymaker-sudoers-'));
}

maybe('a valid drop-in is switched in root-owned 0440, with no temp file left behind', () => {
  const d = dir();
  const path = join(d, 'keymaker');
  writeSudoersFile(nodeHostSystem(), path, sudoersDropIn());
  expect(readFileSync(path, 'utf8')).toBe(sudoersDropIn());
  const st = statSync(path);
  expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o440, 0, 0]);
  expect(readdirSync(d)).toEqual(['keymaker']);
});

maybe('a drop-in visudo refuses is never written: the old file stays byte for byte', () => {
  const d = dir();
  const path = join(d, 'keymaker');
  writeFileSync(path, '# the old policy\n', { mode: 0o440 });
  expect(() => writeSudoersFile(nodeHostSystem(), path, '%keymaker-sudo ALL=(ALL:ALL NOPASSWD ALL\n')).toThrow(
    /visudo refused the new .*keymaker, nothing changed/,
  );
  expect(readFileSync(path, 'utf8')).toBe('# the old policy\n');
  expect(readdirSync(d)).toEqual(['keymaker']);
});

maybe('when the whole policy fails after the switch, the old bytes come back', () => {
  const d = dir();
  const path = join(d, 'keymaker');
  writeFileSync(path, '# the old policy\n', { mode: 0o440 });
  const real = nodeHostSystem();
  // The fault comes through the system interface: `visudo -c` (the whole policy) fails, `-cf` is real.
  const sys: HostSystem = {
    ...real,
    run: (argv, opts) =>
      argv.join(' ') === 'visudo -c'
        ? { code: 1, stdout: '', stderr: 'parse error in /etc/sudoers' }
        : real.run(argv, opts),
  };
  expect(() => writeSudoersFile(sys, path, sudoersDropIn())).toThrow(
    /visudo refused the sudo policy .*: parse error.*; the old one is back/,
  );
  expect(readFileSync(path, 'utf8')).toBe('# the old policy\n');
});
