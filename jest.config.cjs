// One jest run, three kinds of test, chosen with --selectProjects:
//   unit         *.test.ts       pure logic and aws-sdk-client-mock; no network, no processes
//   integration  *.int.test.ts   real CLI processes against a moto server started by globalSetup
//   e2e          *.e2e.test.ts   real sshd + ssh in a namespace sandbox (root, Linux only)
const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
};
const moduleNameMapper = {
  '^@keymaker/(core|host|admin)$': '<rootDir>/packages/$1/src/index.ts',
};
const base = { rootDir: __dirname, transform, moduleNameMapper, testEnvironment: 'node' };
// Real processes on a shared 2-core machine: jest's 5 s default fails slow starts, not behaviour. Tests that
// bound a wait assert that bound themselves. (A project's `testTimeout` is ignored by jest: hence the setup file.)
const slow = { setupFilesAfterEnv: ['<rootDir>/tools/jest-slow-timeout.cjs'] };

module.exports = {
  projects: [
    {
      ...base,
      displayName: 'unit',
      testMatch: ['<rootDir>/packages/*/test/**/*.test.ts', '<rootDir>/tools/**/*.test.ts'],
      testPathIgnorePatterns: ['\\.int\\.test\\.ts$', '\\.e2e\\.test\\.ts$'],
    },
    {
      ...base,
      displayName: 'integration',
      ...slow,
      testMatch: ['<rootDir>/packages/*/test/**/*.int.test.ts', '<rootDir>/tools/**/*.int.test.ts'],
      globalSetup: '<rootDir>/tools/moto/jest-global-setup.cjs',
      globalTeardown: '<rootDir>/tools/moto/jest-global-teardown.cjs',
    },
    {
      ...base,
      displayName: 'e2e',
      ...slow,
      testMatch: ['<rootDir>/packages/*/test/**/*.e2e.test.ts'],
      globalSetup: '<rootDir>/tools/moto/jest-global-setup.cjs',
      globalTeardown: '<rootDir>/tools/moto/jest-global-teardown.cjs',
    },
  ],
};
