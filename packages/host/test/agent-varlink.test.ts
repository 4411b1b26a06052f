import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  FramingError,
  MessageFramer,
  VarlinkError,
  VarlinkServer,
  encodeReply,
  errorReply,
  parseCall,
  type VarlinkEvent,
  type VarlinkInterface,
} from '../src/agent/varlink';
import { call, connectRaw } from './agent-client';

describe('varlink framing (pure)', () => {
  test('split messages are joined, concatenated ones separated', () => {
    const framer = new MessageFramer(100);
    expect(framer.push(Buffer.from('{"a":'))).toEqual([]);
    expect(framer.bufferedBytes).toBe(5);
    expect(framer.push(Buffer.from('1}\0{"b":2}\0{"c"')).map(String)).toEqual(['{"a":1}', '{"b":2}']);
    expect(framer.push(Buffer.from(':3}\0')).map(String)).toEqual(['{"c":3}']);
    expect(framer.bufferedBytes).toBe(0);
  });

  test('a message longer than the bound throws, with or without its NUL', () => {
    expect(() => new MessageFramer(10).push(Buffer.from('x'.repeat(11)))).toThrow(FramingError);
    expect(() => new MessageFramer(10).push(Buffer.from('x'.repeat(11) + '\0'))).toThrow(FramingError);
    const framer = new MessageFramer(10);
    framer.push(Buffer.from('x'.repeat(6)));
    expect(() => framer.push(Buffer.from('x'.repeat(6)))).toThrow(FramingError);
    expect(new MessageFramer(10).push(Buffer.from('x'.repeat(10) + '\0')).map(String)).toEqual(['x'.repeat(10)]);
  });

  test('parseCall accepts calls, refuses what is not one', () => {
    expect(parseCall(Buffer.from('{"method":"a.b.C","parameters":{"x":1},"more":true}'))).toEqual({
      call: { method: 'a.b.C', parameters: { x: 1 }, more: true, oneway: false },
    });
    expect(parseCall(Buffer.from('{"method":"a.b.C"}'))).toEqual({
      call: { method: 'a.b.C', parameters: {}, more: false, oneway: false },
    });
    for (const bad of [
      '{',
      '[]',
      '"x"',
      'null',
      '{"method":1}',
      '{"method":"nodots"}',
      '{"method":"a.b.C","parameters":[]}',
      '{"method":"a.b.C","more":"yes"}',
      '{"method":"a.b.C","upgrade":true}',
      '{"method":"a.b.C","more":true,"oneway":true}',
    ]) {
      expect(parseCall(Buffer.from(bad))).toHaveProperty('problem');
    }
  });

  test('encodeReply: NUL-terminated, continues only when asked', () => {
    expect(encodeReply({ parameters: { a: 1 } }, true).toString()).toBe('{"parameters":{"a":1},"continues":true}\0');
    expect(encodeReply(errorReply('x.y.Z'), false).toString()).toBe('{"error":"x.y.Z","parameters":{}}\0');
  });
});

describe('varlink server', () => {
  let dir: string;
  let socketPath: string;
  let server: VarlinkServer;
  const events: VarlinkEvent[] = [];
  const iface: VarlinkInterface = {
    name: 'test.Echo',
    failure: (_call, reason) => errorReply(reason === 'deadline' ? 'test.Echo.TooSlow' : 'test.Echo.Broken'),
    methods: {
      Echo: (c) => [{ parameters: c.parameters }],
      Many: (c) => [1, 2, 3].map((n) => ({ parameters: { n, more: c.more } })),
      Refuse: () => {
        throw new VarlinkError('test.Echo.Refused', { why: 'because' });
      },
      Crash: async () => {
        throw new Error('boom');
      },
      Hang: () => new Promise(() => undefined),
      Slow: async (c) => {
        await new Promise((r) => setTimeout(r, Number(c.parameters.ms)));
        return [{ parameters: { slept: c.parameters.ms } }];
      },
    },
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-varlink.'));
    socketPath = path.join(dir, 'userdb', 'test.echo');
    server = new VarlinkServer({
      info: { vendor: 'v', product: 'p', version: '1', url: 'u' },
      interfaces: [iface],
      deadlineMs: 200,
      maxMessageBytes: 1024,
      maxPendingPerConnection: 4,
      log: (e) => events.push(e),
    });
    await server.listen({ path: socketPath });
  });
  afterAll(async () => {
    await server.close();
    expect(fs.existsSync(socketPath)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is mode 0666 (every process is an NSS client)', () => {
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o666);
    expect(fs.statSync(socketPath).isSocket()).toBe(true);
  });

  test('a call and its reply; errors from VarlinkError', async () => {
    expect(await call(socketPath, 'test.Echo.Echo', { a: 1 })).toEqual([{ parameters: { a: 1 } }]);
    expect(await call(socketPath, 'test.Echo.Refuse')).toEqual([
      { error: 'test.Echo.Refused', parameters: { why: 'because' } },
    ]);
    expect(await call(socketPath, 'test.Echo.Crash')).toEqual([{ error: 'test.Echo.Broken', parameters: {} }]);
  });

  test('more: all replies but the last continue; without more only one reply', async () => {
    expect(await call(socketPath, 'test.Echo.Many', {}, { more: true })).toEqual([
      { parameters: { n: 1, more: true }, continues: true },
      { parameters: { n: 2, more: true }, continues: true },
      { parameters: { n: 3, more: true } },
    ]);
    expect(await call(socketPath, 'test.Echo.Many')).toEqual([{ parameters: { n: 1, more: false } }]);
  });

  test('unknown method -> MethodNotFound; GetInfo and GetInterfaceDescription', async () => {
    expect(await call(socketPath, 'test.Echo.Nope')).toEqual([
      { error: 'org.varlink.service.MethodNotFound', parameters: { method: 'test.Echo.Nope' } },
    ]);
    expect(await call(socketPath, 'other.iface.Method')).toEqual([
      { error: 'org.varlink.service.MethodNotFound', parameters: { method: 'other.iface.Method' } },
    ]);
    expect(await call(socketPath, 'org.varlink.service.GetInfo')).toEqual([
      {
        parameters: {
          vendor: 'v',
          product: 'p',
          version: '1',
          url: 'u',
          interfaces: ['org.varlink.service', 'test.Echo'],
        },
      },
    ]);
    const [desc] = await call(socketPath, 'org.varlink.service.GetInterfaceDescription', {
      interface: 'org.varlink.service',
    });
    expect((desc!.parameters as { description: string }).description).toContain('method GetInfo()');
    expect(await call(socketPath, 'org.varlink.service.GetInterfaceDescription', { interface: 'x.y' })).toEqual([
      { error: 'org.varlink.service.InterfaceNotFound', parameters: { interface: 'x.y' } },
    ]);
  });

  test('split and concatenated messages on one connection; replies in call order', async () => {
    const conn = await connectRaw(socketPath);
    const msg = (ms: number) => JSON.stringify({ method: 'test.Echo.Slow', parameters: { ms } }) + '\0';
    const all = msg(80) + msg(0) + JSON.stringify({ method: 'test.Echo.Echo', parameters: { z: 1 } }) + '\0';
    for (let i = 0; i < all.length; i += 7) {
      conn.send(all.slice(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    expect(await conn.waitReplies(3)).toEqual([
      { parameters: { slept: 80 } },
      { parameters: { slept: 0 } },
      { parameters: { z: 1 } },
    ]);
    conn.close();
  });

  test('oneway calls get no reply', async () => {
    const conn = await connectRaw(socketPath);
    conn.send(
      JSON.stringify({ method: 'test.Echo.Echo', parameters: { a: 1 }, oneway: true }) +
        '\0' +
        JSON.stringify({ method: 'test.Echo.Echo', parameters: { b: 2 } }) +
        '\0',
    );
    expect(await conn.waitReplies(1)).toEqual([{ parameters: { b: 2 } }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(conn.replies).toHaveLength(1);
    conn.close();
  });

  test.each([
    ['bad JSON', '{"method":\0'],
    ['not an object', '[1,2]\0'],
    ['oversize message', 'x'.repeat(2000)],
    [
      'oversize message with NUL',
      JSON.stringify({ method: 'test.Echo.Echo', parameters: { pad: 'x'.repeat(2000) } }) + '\0',
    ],
    ['too many calls in flight', (JSON.stringify({ method: 'test.Echo.Hang' }) + '\0').repeat(5)],
  ])('%s closes the connection', async (_what, bytes) => {
    const conn = await connectRaw(socketPath);
    conn.send(bytes);
    await conn.waitClosed();
    expect(events.some((e) => e.type === 'protocol-error')).toBe(true);
  });

  test('bad input after a good call: the good reply came first, then the connection closes', async () => {
    const conn = await connectRaw(socketPath);
    conn.send(JSON.stringify({ method: 'test.Echo.Echo', parameters: { ok: 1 } }) + '\0');
    expect(await conn.waitReplies(1)).toEqual([{ parameters: { ok: 1 } }]);
    conn.send('not json\0');
    await conn.waitClosed();
  });

  test('a handler that never answers: the failure reply arrives within the deadline', async () => {
    const started = Date.now();
    expect(await call(socketPath, 'test.Echo.Hang')).toEqual([{ error: 'test.Echo.TooSlow', parameters: {} }]);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(10_000);
    expect(events).toContainEqual(expect.objectContaining({ type: 'deadline', method: 'test.Echo.Hang' }));
  });

  test('pipelined hanging calls: each answered within the deadline of its own arrival, not one after another', async () => {
    const conn = await connectRaw(socketPath);
    const started = Date.now();
    conn.send((JSON.stringify({ method: 'test.Echo.Hang' }) + '\0').repeat(3));
    await conn.waitReplies(3);
    expect(Date.now() - started).toBeLessThan(500);
    conn.close();
  });

  test('a stale socket is replaced; a live one is refused', async () => {
    const stale = path.join(dir, 'stale.sock');
    const old = net.createServer();
    await new Promise<void>((r) => old.listen(stale, r));
    const second = new VarlinkServer({
      info: { vendor: 'v', product: 'p', version: '1', url: 'u' },
      interfaces: [iface],
    });
    await expect(second.listen({ path: stale })).rejects.toThrow(/another service is listening/);
    await new Promise<void>((r) => old.close(() => r()));
    // A killed process leaves its socket file behind, with nobody listening.
    const killed = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.statSync(stale).isSocket()).toBe(true);
    await second.listen({ path: stale });
    expect(await call(stale, 'test.Echo.Echo', { s: 1 })).toEqual([{ parameters: { s: 1 } }]);
    await second.close();
    const notSocket = path.join(dir, 'plain');
    fs.writeFileSync(notSocket, '');
    await expect(
      new VarlinkServer({ info: { vendor: 'v', product: 'p', version: '1', url: 'u' }, interfaces: [iface] }).listen({
        path: notSocket,
      }),
    ).rejects.toThrow(/not a socket/);
  });
});
