// Real socket activation: systemd-socket-activate (from the systemd package) creates two listening sockets and
// hands them to a child the way systemd does for the agent's .socket units; the child finds them by name.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { readAll } from './agent-client';

const activator = spawnSync('systemd-socket-activate', ['--version']).status === 0;

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 100 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
}

(activator ? test : test.skip)(
  'each inherited socket answers under the name its unit gave it',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keymaker-fds-'));
    const userdb = join(dir, 'io.keymaker.Agent');
    const keys = join(dir, 'keys.sock');
    const bundle = join(dir, 'listen-fds.cjs');
    buildSync({
      entryPoints: [resolve(__dirname, '../src/agent/listen-fds.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: bundle,
      logLevel: 'silent',
    });
    const script = [
      `const { listenFds } = require(${JSON.stringify(bundle)});`,
      `const net = require('node:net');`,
      `for (const [name, fd] of listenFds(process.env, process.pid))`,
      `  net.createServer((s) => s.end(name + ' ' + String(process.env.LISTEN_FDS))).listen({ fd });`,
    ].join('\n');
    const child = spawn(
      'systemd-socket-activate',
      ['-l', userdb, '-l', keys, '--fdname=userdb:keys', process.execPath, '-e', script],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      await waitFor(keys);
      expect(await readAll(keys)).toBe('keys undefined');
      expect(await readAll(userdb)).toBe('userdb undefined');
    } finally {
      child.kill('SIGTERM');
    }
    expect(stderr).not.toMatch(/Error/);
  },
  30_000,
);
