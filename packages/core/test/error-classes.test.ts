import { expect } from '@jest/globals';
import {
  AccessRefusedError,
  AwsError,
  DeadlineError,
  EXIT_CODES,
  HostError,
  InputError,
  KeymakerError,
  RoleConfigError,
  errorForCode,
  type ErrorCode,
} from '../src/index';
import { AWS_ERROR_CODES, HOST_ERROR_CODES, INPUT_ERROR_CODES, REFUSAL_CODES } from '../src/errors';

const FILED: Array<[readonly string[], new (...args: never[]) => KeymakerError]> = [
  [INPUT_ERROR_CODES, InputError],
  [AWS_ERROR_CODES, AwsError],
  [REFUSAL_CODES, AccessRefusedError],
  [HOST_ERROR_CODES, HostError],
  [['INVALID_ROLE_CONFIG'], RoleConfigError],
  [['DEADLINE_EXCEEDED'], DeadlineError],
];

describe('error classes', () => {
  it('files every code but INTERNAL in exactly one class', () => {
    for (const code of Object.keys(EXIT_CODES)) {
      const owners = FILED.filter(([codes]) => codes.includes(code)).map(([, Class]) => Class.name);
      expect({ code, owners }).toEqual({ code, owners: code === 'INTERNAL' ? [] : [expect.any(String)] });
    }
  });

  it('errorForCode builds the owning class, with the code and exit code unchanged', () => {
    for (const code of Object.keys(EXIT_CODES) as ErrorCode[]) {
      const cause = new Error('cause');
      const error = errorForCode(code, `${code} happened`, { cause, details: { code } });
      const owner = FILED.find(([codes]) => codes.includes(code))?.[1] ?? KeymakerError;
      expect(error.constructor).toBe(owner);
      expect(error.code).toBe(code);
      expect(error.exitCode).toBe(EXIT_CODES[code]);
      expect(error.message).toBe(`${code} happened`);
      expect(error.cause).toBe(cause);
      expect(error.details).toEqual({ code });
    }
  });
});

it('a class refuses the code of another class at compile time', () => {
  // @ts-expect-error THROTTLED is AwsError's
  const host = new HostError('THROTTLED', 'x');
  // @ts-expect-error NO_SUCH_KEY is AwsError's
  const refused = new AccessRefusedError('NO_SUCH_KEY', 'x');
  // @ts-expect-error UNKNOWN_PROFILE is AwsError's
  const input = new InputError('UNKNOWN_PROFILE', 'x');
  expect([host.code, refused.code, input.code]).toEqual(['THROTTLED', 'NO_SUCH_KEY', 'UNKNOWN_PROFILE']);
});
