import * as path from 'node:path';
import {
  codeCachePath,
  DEFAULT_PATHS,
  loadBundle,
  LOOKUP_IAM_CONNECTIONS,
  makeCodeCache,
  preconnectFromHostConfig,
} from '@keymaker/host';

/**
 * What the installed wrappers run (dist/keymaker-host-loader.cjs): loads the CommonJS build of
 * the host entry next to it (keymaker-host.cjs) with the V8 code cache install made for it, if
 * that cache is trusted and matches (@keymaker/host code-cache.ts), then runs the command.
 * For sshd's lookup it first opens the IAM connections the root-owned host config points at, so
 * their handshakes overlap the bundle's loading (config/preconnect.ts).
 * `--print-code-cache [INSTALLED]` (install, as root, on the Node the wrappers run) prints a cache, base64: the
 * installed one when it is still valid for this bundle (so reinstalling changes nothing), else a new one.
 */
const bundle = path.join(__dirname, 'keymaker-host.cjs');

const installed = process.argv[3];
if (
  process.argv[2] === '--print-code-cache' &&
  process.argv.length <= 4 &&
  (!installed || path.isAbsolute(installed))
) {
  process.stdout.write(makeCodeCache(bundle, installed).toString('base64'));
} else {
  if (process.argv[2] === 'get_authorized_keys')
    preconnectFromHostConfig(DEFAULT_PATHS.configFile, LOOKUP_IAM_CONNECTIONS);
  const { exports } = loadBundle(bundle, { cachePath: codeCachePath(bundle) });
  void (exports.main as (argv: string[]) => Promise<void>)(process.argv.slice(2));
}
