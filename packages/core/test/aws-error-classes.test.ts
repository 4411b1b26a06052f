// AWS_ERROR_CLASSES: each AWS failure's keymaker code, read by toAwsError (and so by awsCall).
import { expect } from '@jest/globals';
import { AwsError, DeadlineError, EXIT_CODES, toAwsError } from '../src/index';
import { AWS_ERROR_CLASSES } from '../src/aws-error-classes';

const failure = (fields: { name?: string; message?: string; code?: string; $metadata?: object }) =>
  Object.assign(new Error(fields.message ?? 'it failed'), fields);

describe('AWS_ERROR_CLASSES', () => {
  const named = AWS_ERROR_CLASSES.flatMap((row) => (row.names ?? []).map((name) => [name, row.code] as const));

  it('names each AWS error in one row only', () => {
    const names = named.map(([name]) => name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('maps each named error, with or without "Exception", to the code of its row and keeps the AWS name', () => {
    for (const [name, code] of named) {
      for (const spelled of [name, `${name}Exception`]) {
        const error = toAwsError(failure({ name: spelled, $metadata: {} }), 'GetUser');
        expect(error).toBeInstanceOf(AwsError);
        expect({ spelled, code: error.code, awsCode: (error as AwsError).awsCode }).toEqual({
          spelled,
          code,
          awsCode: spelled,
        });
        expect(error.message).not.toContain('\n');
      }
    }
  });

  it.each([
    ['Throttling', 'THROTTLED', 'GetUser was throttled by AWS; try again later'],
    ['AccessDenied', 'ACCESS_DENIED', 'GetUser was denied: it failed; grant the permission iam:GetUser'],
    ['ExpiredToken', 'NO_CREDENTIALS', 'AWS credentials were refused (ExpiredToken); refresh or fix your credentials'],
    ['NoSuchEntityException', 'NO_SUCH_ENTITY', 'GetUser: it failed'],
    ['RequestTimeout', 'NETWORK', 'GetUser timed out: it failed'],
  ])('%s is %s: "%s"', (name, code, message) => {
    expect(toAwsError(failure({ name, $metadata: {} }), 'GetUser')).toMatchObject({ code, message });
  });

  it('names the STS permission for STS calls', () => {
    expect(toAwsError(failure({ name: 'AccessDenied' }), 'AssumeRole').message).toMatch(/sts:AssumeRole$/);
  });

  it('classifies what has no AWS name by its message or system code', () => {
    const cases: Array<[Parameters<typeof failure>[0], string]> = [
      [{ message: 'Region is missing' }, 'NO_REGION'],
      [{ message: 'Could not load credentials from any providers' }, 'NO_CREDENTIALS'],
      [{ message: 'a credential was rejected', $metadata: { httpStatusCode: 400 } }, 'AWS_ERROR'],
      [{ code: 'ECONNREFUSED' }, 'NETWORK'],
      [{ code: 'EAI_AGAIN' }, 'NETWORK'],
      [{ code: 'ENOENT' }, 'AWS_ERROR'],
      [{ message: 'socket hang up' }, 'NETWORK'],
      [{ name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } }, 'AWS_ERROR'],
    ];
    for (const [fields, code] of cases)
      expect([fields, toAwsError(failure(fields), 'GetUser').code]).toEqual([fields, code]);
    expect(toAwsError(failure({ code: 'ECONNRESET' }), 'GetUser').message).toBe(
      'GetUser could not reach AWS: ECONNRESET',
    );
  });

  it('an unmatched abort is the deadline; anything else unmatched is AWS_ERROR naming the AWS error', () => {
    expect(toAwsError(failure({ name: 'AbortError' }), 'GetUser')).toBeInstanceOf(DeadlineError);
    expect(toAwsError(failure({ name: 'Weird', message: 'odd\nsecond line' }), 'GetUser')).toMatchObject({
      code: 'AWS_ERROR',
      message: 'GetUser failed: Weird: odd',
    });
  });

  it('the code of every row is an AWS code with an exit code of its own', () => {
    for (const row of AWS_ERROR_CLASSES) expect(EXIT_CODES[row.code]).toBeGreaterThan(EXIT_CODES.INTERNAL);
  });
});
