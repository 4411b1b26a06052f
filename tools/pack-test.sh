#!/usr/bin/env bash
# `npm pack` of @keymaker/cli installs globally on its own and `keymaker --version` runs.
# Installs into a temporary prefix so the machine's global packages stay untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd packages/cli && npm pack --silent --pack-destination "$work" >/dev/null)
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
tar -tzf "$tarball" | grep -qx 'package/dist/keymaker.1' || { echo "pack-test: dist/keymaker.1 missing from $(basename "$tarball")" >&2; exit 1; }
[ -e "$work/prefix/share/man/man1/keymaker.1" ] || { echo "pack-test: npm did not install the man page (share/man/man1/keymaker.1)" >&2; exit 1; }
head -1 "$work/prefix/share/man/man1/keymaker.1" | grep -q '^\.TH KEYMAKER 1' || { echo "pack-test: keymaker.1 is not a man page" >&2; exit 1; }
echo "pack-test: $(basename "$tarball") installed globally; keymaker --version = $version" >&2
