// The integration and e2e projects' test timeout. Jest reads `testTimeout` only from the top-level config, never
// from a project's, so each slow project sets it here (setupFilesAfterEnv); a file's own jest.setTimeout wins.
/* global jest */
jest.setTimeout(60_000);
