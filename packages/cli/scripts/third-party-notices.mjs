// esbuild plugin (used by tsup.config.ts): writes dist/THIRD_PARTY_NOTICES, the licence notices of
// every third-party package whose code the build bundles into the tarball (keymaker-host.js carries
// the AWS SDK and its dependencies), from esbuild's metafile: name, version, licence and the
// package's own licence text. Both tsup builds share one collector, so the file lists the union.
import fs from 'node:fs';
import path from 'node:path';

const bundled = new Map(); // package dir -> { name, version, license, text }

function packageOf(file) {
  const abs = path.resolve(file).split(path.sep).join('/');
  const at = abs.lastIndexOf('/node_modules/');
  if (at < 0) return undefined; // our own sources (and the @keymaker workspace packages)
  const rest = abs.slice(at + '/node_modules/'.length).split('/');
  const name = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  return abs.slice(0, at + '/node_modules/'.length) + name;
}

function describe(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const license = typeof pkg.license === 'string' ? pkg.license : (pkg.license?.type ?? 'UNKNOWN');
  const files = fs
    .readdirSync(dir)
    .filter((f) => /^(licen[cs]e|copying|notice)([.-].*)?$/i.test(f))
    .sort();
  const text = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8').trim()).join('\n\n');
  return { name: pkg.name, version: pkg.version, license, text };
}

function write(outFile) {
  const entries = [...bundled.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const rule = '-'.repeat(78);
  const out = [
    'THIRD-PARTY SOFTWARE NOTICES',
    '',
    '@keymaker/cli bundles the following third-party packages into dist/ (keymaker-host.js is',
    'self-contained). Each is listed with its version, its licence and the licence text it ships with.',
    '',
    ...entries.map((e) => `${e.name}@${e.version} (${e.license})`),
    '',
  ];
  for (const e of entries) {
    out.push(
      rule,
      `${e.name}@${e.version}`,
      `License: ${e.license}`,
      '',
      e.text || `(no licence file in the package; its package.json says ${e.license})`,
      '',
    );
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, out.join('\n'));
}

export function thirdPartyNotices(outFile = 'dist/THIRD_PARTY_NOTICES') {
  return {
    name: 'third-party-notices',
    setup(build) {
      build.initialOptions.metafile = true;
      build.onEnd((result) => {
        if (!result.metafile || result.errors.length) return;
        for (const input of Object.keys(result.metafile.inputs)) {
          const dir = packageOf(input.replace(/^[a-z-]+:/, ''));
          if (dir && !bundled.has(dir)) bundled.set(dir, describe(dir));
        }
        write(outFile);
      });
    },
  };
}
