import { LISTEN_FDS_START, listenFds } from '../src/agent/listen-fds';

test('named sockets are found by name, whatever order systemd passes them in', () => {
  const env = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'keys:userdb', PATH: '/bin' };
  const fds = listenFds(env, 42);
  expect(fds.get('userdb')).toBe(LISTEN_FDS_START + 1);
  expect(fds.get('keys')).toBe(LISTEN_FDS_START);
  // Children (getent, the SDK's credential helpers) must not think the sockets are theirs.
  expect(env).toEqual({ PATH: '/bin' });
});

test('sockets meant for another process, or no activation at all, give nothing', () => {
  expect(listenFds({ LISTEN_PID: '41', LISTEN_FDS: '2', LISTEN_FDNAMES: 'keys:userdb' }, 42).size).toBe(0);
  expect(listenFds({}, 42).size).toBe(0);
});

test.each([
  [{ LISTEN_PID: '42', LISTEN_FDS: 'two' }, /is not a count/],
  [{ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'keys' }, /names 1 sockets but LISTEN_FDS says 2/],
  [{ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'keys:keys' }, /two sockets are named "keys"/],
])('a malformed hand-over is an error naming the fix: %j', (env, message) => {
  expect(() => listenFds(env, 42)).toThrow(message);
});
