import { addSystemdToNsswitch, databasesWithoutSystemd, nssSources } from '../src/install/nsswitch';

// Debian 12 before libnss-systemd's postinst, and Ubuntu's shipped file (shadow: files only).
const DEBIAN = `# /etc/nsswitch.conf
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
`;

test('agent mode adds systemd after files on the passwd, group and shadow lines only', () => {
  const edit = addSystemdToNsswitch(DEBIAN);
  expect(edit.changed).toEqual(['passwd', 'group', 'shadow']);
  expect(edit.text).toBe(`# /etc/nsswitch.conf
passwd:         files systemd
group:          files systemd
shadow:         files systemd
gshadow:        files

hosts:          files dns
`);
  expect(databasesWithoutSystemd(edit.text)).toEqual([]);
});

test('a second install changes nothing', () => {
  const once = addSystemdToNsswitch(DEBIAN).text;
  expect(addSystemdToNsswitch(once)).toEqual({ text: once, changed: [], blocked: [] });
});

test('local files keep winning and an action item stays with its source; network sources stay after', () => {
  const text = 'passwd: compat [UNAVAIL=continue] sss\ngroup: sss files ldap # site\nshadow: files systemd\n';
  const edit = addSystemdToNsswitch(text);
  expect(edit.changed).toEqual(['passwd', 'group']);
  expect(edit.text).toBe(
    'passwd: compat [UNAVAIL=continue] systemd sss\ngroup: sss files systemd ldap # site\nshadow: files systemd\n',
  );
});

test('a line that ends the lookup after files is not edited but reported, so install can refuse agent mode', () => {
  const text = 'passwd: files [NOTFOUND=return] sss\ngroup: files\nshadow: files\n';
  const edit = addSystemdToNsswitch(text);
  expect(edit.blocked).toEqual([{ database: 'passwd', line: 'passwd: files [NOTFOUND=return] sss' }]);
  expect(edit.changed).toEqual(['group', 'shadow']);
  expect(edit.text.split('\n')[0]).toBe('passwd: files [NOTFOUND=return] sss');
});

test('a database without a line gets files plus systemd; a line without files keeps files first', () => {
  const edit = addSystemdToNsswitch('passwd: sss\nhosts: files dns');
  expect(edit.changed).toEqual(['passwd', 'group', 'shadow']);
  expect(nssSources(edit.text, 'passwd')).toEqual(['files', 'systemd', 'sss']);
  expect(nssSources(edit.text, 'group')).toEqual(['files', 'systemd']);
  expect(nssSources(edit.text, 'shadow')).toEqual(['files', 'systemd']);
  expect(edit.text.endsWith('\n')).toBe(true);
  expect(edit.text.startsWith('passwd: files systemd sss\nhosts: files dns\n')).toBe(true);
});

test('only the first line of a database counts, as for glibc; comments are not lines', () => {
  const text =
    '#passwd: files systemd\npasswd: files\npasswd: files systemd\ngroup: files systemd\nshadow: files systemd\n';
  expect(databasesWithoutSystemd(text)).toEqual(['passwd']);
  const edit = addSystemdToNsswitch(text);
  expect(edit.text.split('\n').slice(0, 3)).toEqual([
    '#passwd: files systemd',
    'passwd: files systemd',
    'passwd: files systemd',
  ]);
});
