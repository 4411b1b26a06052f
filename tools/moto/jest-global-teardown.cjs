'use strict';
// jest globalTeardown: stop the moto server started by jest-global-setup.cjs.
module.exports = async function globalTeardown() {
  const moto = globalThis.__KEYMAKER_MOTO__;
  if (moto) {
    delete globalThis.__KEYMAKER_MOTO__;
    await moto.stop();
  }
};
