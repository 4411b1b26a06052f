import {
  groupRecord,
  membershipsOfGroup,
  membershipsOfUser,
  privateGroupOf,
  recordReply,
  userRecord,
  type ResolvedUser,
} from '../src/agent/userdb-records';

const alice: ResolvedUser = {
  linuxName: 'alice',
  uid: 1879048200,
  gid: 1879048200,
  iamUserName: 'Alice',
  homeBase: '/home',
  shell: '/bin/bash',
};

describe('userdb records', () => {
  test('a user record has the fields libnss-systemd needs, with the service and no privileged section', () => {
    expect(userRecord(alice, 'io.keymaker.agent')).toEqual({
      userName: 'alice',
      uid: 1879048200,
      gid: 1879048200,
      realName: 'Alice',
      homeDirectory: '/home/alice',
      shell: '/bin/bash',
      disposition: 'regular',
      service: 'io.keymaker.agent',
    });
    // No privileged.hashedPassword: the shadow hash is "!*", and the record is complete.
    expect(userRecord(alice, 's.x')).not.toHaveProperty('privileged');
    expect(recordReply(userRecord(alice, 's.x')).incomplete).toBe(false);
  });

  test('the home is under the base, normalized; GECOS separators are removed', () => {
    expect(userRecord({ ...alice, homeBase: '/srv//homes/' }, 's.x').homeDirectory).toBe('/srv/homes/alice');
    expect(userRecord({ ...alice, iamUserName: 'a:b\nc' }, 's.x').realName).toBe('a b c');
  });

  test('a record NSS would mangle is refused, never served', () => {
    expect(() => userRecord({ ...alice, linuxName: 'Alice' }, 's.x')).toThrow(/user name/);
    expect(() => userRecord({ ...alice, linuxName: 'a:b' }, 's.x')).toThrow(/user name/);
    expect(() => userRecord({ ...alice, uid: -1 }, 's.x')).toThrow(/uid/);
    expect(() => userRecord({ ...alice, uid: 4294967295 }, 's.x')).toThrow(/uid/);
    expect(() => userRecord({ ...alice, uid: 65535 }, 's.x')).toThrow(/uid/);
    expect(() => userRecord({ ...alice, gid: 1.5 }, 's.x')).toThrow(/gid/);
    expect(() => userRecord({ ...alice, homeBase: 'home' }, 's.x')).toThrow(/home base/);
    expect(() => userRecord({ ...alice, shell: 'bash' }, 's.x')).toThrow(/shell/);
    expect(() => userRecord(alice, '')).toThrow(/service/);
  });

  test('group records: members sorted, deduplicated, invalid names dropped; none -> no members field', () => {
    expect(
      groupRecord({ linuxName: 'devs', gid: 1879050000, members: ['bob', 'alice', 'bob', 'Bad:Name'] }, 's.x'),
    ).toEqual({
      groupName: 'devs',
      gid: 1879050000,
      members: ['alice', 'bob'],
      disposition: 'regular',
      service: 's.x',
    });
    expect(groupRecord(privateGroupOf(alice), 's.x')).toEqual({
      groupName: 'alice',
      gid: alice.gid,
      disposition: 'regular',
      service: 's.x',
    });
    expect(() => groupRecord({ linuxName: '-x', gid: 5, members: [] }, 's.x')).toThrow(/group name/);
  });

  test('membership records per group and per user', () => {
    expect(membershipsOfGroup({ linuxName: 'devs', gid: 7, members: ['bob', 'alice'] })).toEqual([
      { userName: 'alice', groupName: 'devs' },
      { userName: 'bob', groupName: 'devs' },
    ]);
    expect(membershipsOfUser('alice', ['ops', 'devs', 'ops'])).toEqual([
      { userName: 'alice', groupName: 'devs' },
      { userName: 'alice', groupName: 'ops' },
    ]);
    expect(membershipsOfUser('Bad', ['devs'])).toEqual([]);
  });
});
