import { linuxUserNameForIamUser } from '@keymaker/core';
import { iamUserNameForLinuxUser } from '../src/names';

// Issue 13, point 10: IAM user names are case-insensitive (IAM refuses "alice"
// when "Alice" exists), Linux names are lower case. The IAM -> Linux mapping
// must give the name the login-time lookup and the PAM hook use for that user.
describe('IAM -> Linux names and case', () => {
  it.each([
    ['Alice.Smith', '', 'alice.smith'],
    ['ALICE', '', 'alice'],
    ['alice.smith', '', 'alice.smith'],
    ['Alice@Example.COM', '@example.com', 'alice'],
    ['alice@example.com', '@Example.com', 'alice'],
  ])('%j (suffix %j) is the Linux user %j, the same the lookup serves', (iamName, suffix, linuxName) => {
    expect(linuxUserNameForIamUser(iamName, suffix)).toBe(linuxName);
    // The lookup asks IAM for this name; IAM answers for iamName because names are case-insensitive.
    expect(iamUserNameForLinuxUser(linuxName, suffix).toLowerCase()).toBe(iamName.toLowerCase());
  });

  it.each([
    ['bob+ops', ''],
    ['bob=ops', ''],
    ['a,b', ''],
    ['bob@example.com', ''],
    ['1password', ''],
    ['-rf', ''],
    ['trailing.', ''],
    ['x'.repeat(33), ''],
    ['ÄLICE', ''],
    ['\u212Aelvin', ''],
    ['carol@other.org', '@example.com'],
  ])('%j (suffix %j) has no Linux name: never mangled into one', (iamName, suffix) => {
    expect(linuxUserNameForIamUser(iamName, suffix)).toBeUndefined();
  });
});
