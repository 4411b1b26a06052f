// The release dry run (tools/release.sh --dry-run --skip-publish) says what a release would do:
// before the first release tag, every package is released at its version on disk (0.1.0, not 0.1.1);
// each package's changelog lists only commits that touch that package's files.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const run = (cmd, args) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
// eslint-disable-next-line no-control-regex -- strips the ANSI colour codes (ESC [ ... m) from the output
const out = run('bash', ['tools/release.sh', '--dry-run', '--skip-publish']).replace(/\x1b\[[0-9;]*m/g, '');
const firstRelease = run('git', ['tag', '--list', '@keymaker/*@*']).trim() === '';
const problems = [];

for (const dir of readdirSync('packages')) {
  const pkg = JSON.parse(readFileSync(`packages/${dir}/package.json`, 'utf8'));
  const m = out.match(
    new RegExp(`Previewing an entry in packages/${dir}/CHANGELOG\\.md for ${pkg.name.replace('/', '\\/')}@(\\S+)`),
  );
  if (!m) {
    problems.push(`${pkg.name}: no changelog entry in the dry run`);
    continue;
  }
  if (firstRelease && m[1] !== pkg.version)
    problems.push(`${pkg.name}: first release would be ${m[1]}, not ${pkg.version}`);
  // The entry: "+ - **scope:** description" lines up to the next "NX" line.
  const block = out
    .slice(out.indexOf(m[0]) + m[0].length)
    .split(/\n\s*NX\s/)[0]
    .split('Thank You')[0];
  const entries = [...block.matchAll(/^\+ - (?:\*\*[^*]+:\*\* )?(.+)$/gm)]
    .map((e) => e[1].trim())
    .filter((e) => !/^Updated @keymaker\//.test(e));
  const touching = new Set(
    run('git', ['log', '--format=%s', '--', `packages/${dir}`])
      .split('\n')
      .map((s) => s.replace(/^\w+(\([^)]*\))?!?:\s*/, '').trim()),
  );
  for (const e of entries)
    if (!touching.has(e))
      problems.push(`${pkg.name}: changelog lists "${e}", a commit that does not touch packages/${dir}`);
  console.error(
    `release-check: ${pkg.name}@${m[1]}, ${entries.length} changelog entries, all from commits touching packages/${dir}`,
  );
}
if (problems.length) {
  for (const p of problems) console.error(`release-check: ${p}`);
  process.exit(1);
}
