import {
  removeDynamicGroups,
  SUDO_LINUX_GROUP,
  sudoConfWithDynamicGroups,
  sudoersDropIn,
  sudoersIncludesDir,
} from '../src/install/sudoers';

test('members of the keymaker sudo group get sudo without a password prompt; nothing else is granted', () => {
  const lines = sudoersDropIn()
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
  expect(lines).toEqual([`%${SUDO_LINUX_GROUP} ALL=(ALL:ALL) NOPASSWD: ALL`]);
});

test.each(['sudo ALL', '%wheel', 'a\nroot ALL=(ALL) ALL'])(
  'a group name that would change the rule is refused: %j',
  (g) => {
    expect(() => sudoersDropIn(g)).toThrow(/not a Linux group name/);
  },
);

test('sudo.conf gets dynamic group lookups so a revoked group ends sudo in open sessions', () => {
  const edit = sudoConfWithDynamicGroups('# sudo.conf\nSet disable_coredump true');
  expect(edit.changed).toBe(true);
  expect(edit.text.startsWith('# sudo.conf\nSet disable_coredump true\n')).toBe(true);
  expect(edit.text.split('\n')).toContain('Set group_source dynamic');
  expect(sudoConfWithDynamicGroups(edit.text)).toEqual({ text: edit.text, changed: false });
});

test("an administrator's own group_source stays, with a note saying what it costs", () => {
  const edit = sudoConfWithDynamicGroups('Set group_source static\n');
  expect(edit).toMatchObject({ text: 'Set group_source static\n', changed: false });
  expect(edit.note).toMatch(/keeps sudo in sessions already open/);
});

test.each(['', '# sudo.conf\n', '# no newline at the end', 'Set disable_coredump false\n\n'])(
  "taking keymaker's lines out of sudo.conf gives back the bytes before: %j",
  (before) => {
    const edit = sudoConfWithDynamicGroups(before);
    expect(edit.changed).toBe(true);
    expect(removeDynamicGroups(edit.text)).toEqual({ text: before, notes: [] });
  },
);

test("an administrator's own dynamic line (no keymaker comment above it) is never taken out", () => {
  expect(removeDynamicGroups('Set group_source dynamic\n').text).toBe('Set group_source dynamic\n');
});

test.each([
  ['@includedir /etc/sudoers.d', true],
  ['#includedir /etc/sudoers.d/', true],
  ['  @includedir   /etc/sudoers.d  ', true],
  ['## @includedir /etc/sudoers.d', false],
  ['@includedir /etc/sudoers.d.local', false],
  ['@include /etc/sudoers.d', false],
  ['# includedir /etc/sudoers.d', false],
])('sudoers line %j reads /etc/sudoers.d: %s', (line, reads) => {
  expect(sudoersIncludesDir(`root ALL=(ALL) ALL\n${line}\n`, '/etc/sudoers.d')).toBe(reads);
});
