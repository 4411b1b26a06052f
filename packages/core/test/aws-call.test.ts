// awsCall: the one wrapper of an SDK call, its NoSuchEntity-to-user/key mapping and a caller's own cases.
import { expect } from '@jest/globals';
import { awsCall, AwsError, toAwsError } from '../src/index';

const noSuchEntity = () =>
  Promise.reject(
    Object.assign(new Error('The user with name bob cannot be found.'), { name: 'NoSuchEntityException' }),
  );

test('without options a NoSuchEntity stays a bare entity', async () => {
  await expect(awsCall('GetUser', noSuchEntity)).rejects.toMatchObject({
    code: 'NO_SUCH_ENTITY',
    operation: 'GetUser',
  });
});

test('with missing, a NoSuchEntity names the user or key, keeping the AWS code and the cause', async () => {
  const error = await awsCall('GetUser', noSuchEntity, {
    missing: { code: 'NO_SUCH_USER', message: 'no such IAM user: bob' },
  }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(AwsError);
  expect(error).toMatchObject({
    code: 'NO_SUCH_USER',
    message: 'no such IAM user: bob',
    awsCode: 'NoSuchEntityException',
    operation: 'GetUser',
    cause: { code: 'NO_SUCH_ENTITY' },
  });
});

test('missing leaves every other failure as toAwsError maps it', async () => {
  const denied = () => Promise.reject(Object.assign(new Error('nope'), { name: 'AccessDenied' }));
  await expect(awsCall('GetUser', denied, { missing: { code: 'NO_SUCH_USER', message: 'x' } })).rejects.toMatchObject({
    code: 'ACCESS_DENIED',
  });
});

test('classify puts a caller’s own cases in front of the common mapping', async () => {
  const classify = (error: unknown, operation: string) =>
    (error as Error).message === 'special' ? new AwsError('NO_REGION', 'special case') : toAwsError(error, operation);
  await expect(awsCall('GetRole', () => Promise.reject(new Error('special')), { classify })).rejects.toMatchObject({
    code: 'NO_REGION',
  });
  await expect(awsCall('GetRole', noSuchEntity, { classify })).rejects.toMatchObject({ code: 'NO_SUCH_ENTITY' });
});
