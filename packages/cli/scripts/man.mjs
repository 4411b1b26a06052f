// Writes dist/keymaker.1 from the built CLI's own help text (run by tsup's onSuccess after the build).
import { writeFileSync } from 'node:fs';

const { manPage } = await import(new URL('../dist/main.js', import.meta.url).href);
const target = new URL('../dist/keymaker.1', import.meta.url);
writeFileSync(target, await manPage());
process.stderr.write(`man: wrote ${target.pathname}\n`);
