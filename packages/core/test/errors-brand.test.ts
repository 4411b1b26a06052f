import {
  AwsError,
  EXIT_CODES,
  InputError,
  KEYMAKER_ERROR_BRAND,
  KeymakerError,
  exitCodeFor,
  formatError,
  isKeymakerError,
} from '../src/errors';

/** What an error thrown by another copy of @keymaker/core looks like here: a different class, the same brand. */
function fromAnotherCopy(code: string, message: string, extra: Record<string, unknown> = {}): Error {
  const error = new Error(message) as Error & Record<PropertyKey, unknown>;
  error.name = 'KeymakerError';
  error.code = code;
  Object.assign(error, extra);
  Object.defineProperty(error, Symbol.for('keymaker.error'), { value: true });
  return error;
}

describe('KeymakerError across copies of the package', () => {
  it('the brand is the process-wide Symbol.for("keymaker.error")', () => {
    expect(KEYMAKER_ERROR_BRAND).toBe(Symbol.for('keymaker.error'));
    expect(
      (new InputError('INVALID_ARGUMENT', 'x') as unknown as Record<symbol, unknown>)[Symbol.for('keymaker.error')],
    ).toBe(true);
  });

  it('recognises a branded error from another copy', () => {
    const error = fromAnotherCopy('NO_SUCH_USER', 'no IAM user alice');
    expect(isKeymakerError(error)).toBe(true);
    expect(isKeymakerError(error, 'NO_SUCH_USER')).toBe(true);
    expect(isKeymakerError(error, 'ACCESS_DENIED')).toBe(false);
    expect(error instanceof KeymakerError).toBe(true);
    expect(exitCodeFor(error)).toBe(EXIT_CODES.NO_SUCH_USER);
    expect(formatError(error)).toBe('keymaker: no IAM user alice');
  });

  it("a code this copy does not know: the other copy's exit code, else INTERNAL", () => {
    expect(exitCodeFor(fromAnotherCopy('SOME_NEW_CODE', 'x', { exitCode: 57 }))).toBe(57);
    expect(exitCodeFor(fromAnotherCopy('SOME_NEW_CODE', 'x'))).toBe(EXIT_CODES.INTERNAL);
    expect(exitCodeFor(fromAnotherCopy('SOME_NEW_CODE', 'x', { exitCode: 'nope' }))).toBe(EXIT_CODES.INTERNAL);
  });

  it('never mistakes an unbranded error for a Keymaker one, even with a Keymaker code', () => {
    const lookalike = Object.assign(new Error('looks like one'), { code: 'NO_SUCH_USER', exitCode: 10 });
    const awsSdkError = Object.assign(new Error('User: x is not authorized'), {
      name: 'AccessDenied',
      code: 'ACCESS_DENIED',
    });
    for (const error of [lookalike, awsSdkError, null, undefined, 'NO_SUCH_USER', { code: 'NO_SUCH_USER' }]) {
      expect(isKeymakerError(error)).toBe(false);
      expect(error instanceof KeymakerError).toBe(false);
      expect(exitCodeFor(error)).toBe(EXIT_CODES.INTERNAL);
    }
    // A brand that is not exactly `true`, or a brand without a code, does not count either.
    const fake = Object.assign(new Error('x'), { code: 'NO_SUCH_USER', [Symbol.for('keymaker.error')]: 'yes' });
    expect(isKeymakerError(fake)).toBe(false);
    const noCode = new Error('x');
    Object.defineProperty(noCode, Symbol.for('keymaker.error'), { value: true });
    expect(isKeymakerError(noCode)).toBe(false);
  });

  it('a real second copy of the module: errors of one are recognised by the other', () => {
    let copy!: typeof import('../src/errors');
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- isolateModules needs the synchronous load of a second copy
      copy = require('../src/errors') as typeof import('../src/errors');
    });
    expect(copy.KeymakerError).not.toBe(KeymakerError);
    const theirs = new copy.AwsError('THROTTLED', 'Rate exceeded', { awsCode: 'Throttling' });
    expect(Function.prototype[Symbol.hasInstance].call(KeymakerError, theirs)).toBe(false); // plain instanceof would miss it
    expect(theirs instanceof KeymakerError).toBe(true);
    expect(isKeymakerError(theirs, 'THROTTLED')).toBe(true);
    expect(exitCodeFor(theirs)).toBe(EXIT_CODES.THROTTLED);
    const ours = new InputError('INVALID_USERNAME', 'bad name');
    expect(copy.isKeymakerError(ours, 'INVALID_USERNAME')).toBe(true);
    expect(copy.exitCodeFor(ours)).toBe(EXIT_CODES.INVALID_USERNAME);
  });

  it('subclasses keep ordinary instanceof', () => {
    const aws = new AwsError('THROTTLED', 'x');
    expect(aws instanceof AwsError).toBe(true);
    expect(aws instanceof KeymakerError).toBe(true);
    expect(aws instanceof InputError).toBe(false);
    expect(new InputError('USAGE', 'x') instanceof AwsError).toBe(false);
    expect(aws.exitCode).toBe(EXIT_CODES.THROTTLED);
  });
});
