// The syslog writer batches messages into as few logger(1) processes as it can, keeps each message's priority and
// order, and counts every message it could not hand over.
import type { ProcessOptions, ProcessResult } from '../src/system/runtime-system';
import { createLoggerSyslog } from '../src/system/syslog';

interface Call {
  argv: string[];
  lines: string[];
  finish: (code: number) => void;
}

/** A logger(1) stand-in: each call stays running until the test finishes it (or its signal aborts it). */
function fakeLogger() {
  const calls: Call[] = [];
  const run = (argv: string[], options: ProcessOptions = {}) =>
    new Promise<ProcessResult>((resolve, reject) => {
      const lines = (options.input ?? '').split('\n').filter(Boolean);
      calls.push({ argv, lines, finish: (code) => resolve({ code, stdout: '', stderr: '' }) });
      options.signal?.addEventListener('abort', () => reject(new Error('aborted')));
    });
  return { calls, run };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('a burst of 1,000 messages takes two logger processes, each line with its own authpriv priority, in order', async () => {
  const logger = fakeLogger();
  const syslog = createLoggerSyslog({ run: logger.run, pid: 42, socket: '/run/test.sock' });
  syslog.log('err', 'first');
  for (let i = 0; i < 999; i++) syslog.log(i % 2 ? 'info' : 'notice', `message ${i}`);
  expect(logger.calls).toHaveLength(1);
  expect(logger.calls[0]!.argv).toEqual([
    'logger',
    '--prio-prefix',
    '-p',
    'authpriv.info',
    '-t',
    'keymaker',
    '--id=42',
    '--socket',
    '/run/test.sock',
  ]);
  expect(logger.calls[0]!.lines).toEqual(['<83>first']);
  const flushed = syslog.flush();
  logger.calls[0]!.finish(0);
  await tick();
  expect(logger.calls).toHaveLength(2);
  expect(logger.calls[1]!.lines).toHaveLength(999);
  expect(logger.calls[1]!.lines.slice(0, 2)).toEqual(['<85>message 0', '<86>message 1']);
  logger.calls[1]!.finish(0);
  await flushed;
  expect(syslog.dropped()).toBe(0);
});

test('a message cannot forge a second line or its own priority', async () => {
  const logger = fakeLogger();
  const syslog = createLoggerSyslog({ run: logger.run });
  syslog.log('info', 'bob\n<83>root logged in');
  expect(logger.calls[0]!.lines).toEqual(['<86>bob <83>root logged in']);
  logger.calls[0]!.finish(0);
  await syslog.flush();
});

test('a logger that fails loses only its own messages; the next batch still goes out', async () => {
  const logger = fakeLogger();
  const syslog = createLoggerSyslog({ run: logger.run });
  syslog.log('info', 'a');
  syslog.log('info', 'b');
  syslog.log('info', 'c');
  const flushed = syslog.flush();
  logger.calls[0]!.finish(1);
  await tick();
  expect(logger.calls[1]!.lines).toEqual(['<86>b', '<86>c']);
  logger.calls[1]!.finish(0);
  await flushed;
  expect(syslog.dropped()).toBe(1);
});

test("past flush's bound the running logger is killed and it and the queue count as dropped", async () => {
  const logger = fakeLogger();
  const syslog = createLoggerSyslog({ run: logger.run });
  for (let i = 0; i < 5; i++) syslog.log('info', `m${i}`);
  await syslog.flush(20);
  expect(syslog.dropped()).toBe(5);
  // Nothing was started after the bound: the 4 queued never reached a logger.
  expect(logger.calls).toHaveLength(1);
  // The writer still works afterwards.
  syslog.log('info', 'later');
  expect(logger.calls).toHaveLength(2);
  logger.calls[1]!.finish(0);
  await syslog.flush();
  expect(syslog.dropped()).toBe(5);
});
