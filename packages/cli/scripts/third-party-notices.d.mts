// Types for third-party-notices.mjs, which tsup.config.ts imports (and eslint type-checks).
import type { Plugin } from 'esbuild';

/** An esbuild plugin writing the licences of the bundled third-party code to outFile (default dist/THIRD_PARTY_NOTICES). */
export function thirdPartyNotices(outFile?: string): Plugin;
