// The PAM session hook of compat mode's key bodies (issue 14): it only starts the root worker and never
// refuses, delays or talks to the session.
import { pamCreateAccountCommand, storeKeyBodiesCommand } from '../src/commands/host-commands';

describe('pam_create_account in the session stage', () => {
  it('starts the key-body worker for the user and exits 0 at once, printing nothing', async () => {
    const started: string[] = [];
    const out: string[] = [];
    const result = await pamCreateAccountCommand(
      { PAM_TYPE: 'open_session', PAM_USER: 'alice' },
      { spawnKeyBodiesWorker: (user) => started.push(user), stdout: (t) => out.push(t) },
    );
    expect(result).toEqual({ exitCode: 0 });
    expect(started).toEqual(['alice']);
    // Not the account hook's first-connection text: that is for the auth stage only.
    expect(out).toEqual([]);
  });

  it('starts nothing for a name that is not a valid Linux name', async () => {
    const started: string[] = [];
    for (const user of ['-oProxyCommand=x', '', '../etc'])
      expect(
        await pamCreateAccountCommand(
          { PAM_TYPE: 'open_session', PAM_USER: user },
          { spawnKeyBodiesWorker: (u) => started.push(u) },
        ),
      ).toEqual({ exitCode: 0 });
    expect(started).toEqual([]);
  });

  it('a worker that cannot start never fails the session', async () => {
    const result = await pamCreateAccountCommand(
      { PAM_TYPE: 'open_session', PAM_USER: 'alice' },
      {
        spawnKeyBodiesWorker: () => {
          throw new Error('EAGAIN');
        },
      },
    );
    expect(result).toEqual({ exitCode: 0 });
  });

  it('the worker takes exactly one valid name', async () => {
    for (const args of [[], ['alice', 'bob'], ['-x']])
      expect((await storeKeyBodiesCommand(args)).stderr).toEqual(['usage: keymaker store_key_bodies USER']);
  });
});
