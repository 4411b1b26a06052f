import { defineConfig } from 'tsup';
// dist/THIRD_PARTY_NOTICES: the licences of the third-party code bundled into the tarball.
import { thirdPartyNotices } from './scripts/third-party-notices.mjs';

/** The host bundles: self-contained (SDK included), no yargs, minified. */
const hostBundle = {
  clean: false,
  target: 'node22',
  platform: 'node',
  splitting: false,
  noExternal: [/.*/],
  minify: true,
} as const;

export default defineConfig([
  {
    // The command line: @keymaker/* libraries are bundled in (they are this
    // package's devDependencies), the AWS SDK and yargs stay dependencies.
    entry: { keymaker: 'src/keymaker.ts', main: 'src/main.ts' },
    format: ['esm'],
    clean: true,
    target: 'node22',
    platform: 'node',
    splitting: true,
    noExternal: [/^@keymaker\//],
    external: [/^@aws-sdk\//, 'yargs'],
    // keymaker(1) from the built CLI's help text: dist/keymaker.1 (package.json "man").
    onSuccess: 'node scripts/man.mjs',
    // __filename in ESM (main.ts loads yargs' CommonJS build through createRequire).
    shims: true,
    esbuildPlugins: [thirdPartyNotices()],
  },
  {
    // The login-time lookup: one self-contained file (SDK included), no yargs,
    // so sshd's per-login process resolves and parses as little as possible.
    ...hostBundle,
    entry: { 'keymaker-host': 'src/host-entry.ts' },
    format: ['esm'],
    esbuildPlugins: [thirdPartyNotices()],
    banner: {
      js: "import { createRequire as __kmCreateRequire } from 'node:module'; const require = __kmCreateRequire(import.meta.url);",
    },
  },
  {
    // The same entry as CommonJS (keymaker-host.cjs) for the loader (keymaker-host-loader.cjs), which
    // compiles it with the V8 code cache install made (vm.Script cachedData: CommonJS only). No
    // dynamic import(): a vm.Script has no module loader, so import("http") becomes a require.
    ...hostBundle,
    entry: { 'keymaker-host': 'src/host-entry.ts', 'keymaker-host-loader': 'src/host-loader.ts' },
    format: ['cjs'],
    esbuildPlugins: [thirdPartyNotices()],
    esbuildOptions(options) {
      options.supported = { ...options.supported, 'dynamic-import': false };
    },
  },
]);
