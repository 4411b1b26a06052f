#!/usr/bin/env bash
# `npm pack` of @keymaker/cli installs globally on its own and `keymaker --version` runs.
# Installs into a temporary prefix so the machine's global packages stay untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# prepack builds (nx, output on stderr): kept in a log, shown when packing fails.
(cd packages/cli && npm pack --silent --pack-destination "$work" >/dev/null 2>"$work/pack.log") || { cat "$work/pack.log" >&2; exit 1; }
tarball=$(ls "$work"/keymaker-cli-*.tgz)
npm install -g --prefix "$work/prefix" --no-audit --no-fund --loglevel=error "$tarball" >/dev/null
version=$("$work/prefix/bin/keymaker" --version)
expected=$(node -p "require('./packages/cli/package.json').version")
if [ "$version" != "$expected" ]; then
  echo "pack-test: keymaker --version printed '$version', expected '$expected'" >&2
  exit 1
fi
"$work/prefix/bin/keymaker" get_authorized_keys >/dev/null 2>&1 && { echo "pack-test: usage error expected" >&2; exit 1; }
# The man page ships in the tarball and npm links it (package.json "man").
# (grep on a captured listing: `tar | grep -q` under pipefail fails when grep exits before tar is done)
listing=$(tar -tzf "$tarball")
grep -qx 'package/dist/keymaker.1' <<<"$listing" || { echo "pack-test: dist/keymaker.1 missing from $(basename "$tarball")" >&2; exit 1; }
[ -e "$work/prefix/share/man/man1/keymaker.1" ] || { echo "pack-test: npm did not install the man page (share/man/man1/keymaker.1)" >&2; exit 1; }
head -1 "$work/prefix/share/man/man1/keymaker.1" | grep -q '^\.TH KEYMAKER 1' || { echo "pack-test: keymaker.1 is not a man page" >&2; exit 1; }
# The licence notices of the third-party code bundled into dist/ (packages/cli/scripts/third-party-notices.mjs).
notices=$(tar -xzOf "$tarball" package/dist/THIRD_PARTY_NOTICES 2>/dev/null) || { echo "pack-test: dist/THIRD_PARTY_NOTICES missing from $(basename "$tarball")" >&2; exit 1; }
for pkg in @aws-sdk/client-iam @aws-sdk/client-sts @smithy/core; do
  grep -q "^$pkg@[0-9][^ ]* (Apache-2.0)$" <<<"$notices" || { echo "pack-test: THIRD_PARTY_NOTICES does not name $pkg" >&2; exit 1; }
done
grep -q 'Apache License' <<<"$notices" || { echo "pack-test: THIRD_PARTY_NOTICES carries no licence texts" >&2; exit 1; }
echo "pack-test: $(basename "$tarball") installed globally; keymaker --version = $version; THIRD_PARTY_NOTICES lists $(grep -c '^License: ' <<<"$notices") bundled packages" >&2

# An unbuilt tree cannot ship an unbuilt tarball: prepack builds first. A copy of the tracked files
# (no dist/) sharing this node_modules; `npm pack --dry-run` of @keymaker/core must list its dist.
fresh="$work/unbuilt"
mkdir -p "$fresh"
git ls-files -z -- package.json nx.json 'tsconfig*.json' packages | xargs -0 cp --parents -t "$fresh"
ln -s "$PWD/node_modules" "$fresh/node_modules"
files=$(cd "$fresh/packages/core" && NX_DAEMON=false npm pack --dry-run --json 2>"$work/unbuilt.log" | node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)')
for f in dist/index.js dist/index.cjs dist/index.d.ts; do
  grep -qx "$f" <<<"$files" || { cat "$work/unbuilt.log" >&2; echo "pack-test: npm pack in an unbuilt tree did not build first ($f missing)" >&2; exit 1; }
done
echo "pack-test: npm pack in an unbuilt tree builds first ($(grep -c '^dist/' <<<"$files") dist files in @keymaker/core)" >&2
