#!/usr/bin/env bash
# `nx release` for this workspace (npm run release -- ARGS; the publish workflow and CI's dry run use it).
# Before the first release (no `@keymaker/<name>@<version>` tag yet) every package is released at
# the version on its package.json (0.1.0) with --first-release, instead of nx bumping that version
# from the conventional commits (which would make the first release 0.1.1). Afterwards: plain
# `nx release ARGS` (independent versions from conventional commits, per-project changelogs).
#   bash tools/release.sh --dry-run --skip-publish      preview
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
if git tag --list '@keymaker/*@*' | grep -q .; then
  exec npx nx release "$@"
fi
versions=$(for f in packages/*/package.json; do node -p "require('./$f').version"; done | sort -u)
if [ "$(wc -l <<<"$versions")" != 1 ]; then
  echo "release: first release, but the packages' versions on disk differ ($(tr '\n' ' ' <<<"$versions")); make them one version or release with nx release VERSION --first-release" >&2
  exit 1
fi
echo "release: no release tag yet: first release of every package at $versions (the version on disk)" >&2
exec npx nx release "$versions" --first-release "$@"
