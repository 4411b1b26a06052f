'use strict';
// jest globalSetup for the integration and e2e projects: start one moto server for
// the whole run. Runs in the parent jest process; process.env set here is
// inherited by the workers.
const { startMoto } = require('./server.cjs');

module.exports = async function globalSetup() {
  const moto = await startMoto();
  globalThis.__KEYMAKER_MOTO__ = moto;
  process.env.KEYMAKER_TEST_MOTO_ENDPOINT = moto.endpoint;
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  process.env.AWS_REGION ??= 'us-east-1';
};
