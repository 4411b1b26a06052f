#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint (pinned below), built once with Go into .toolchain/bin
# (git-ignored) and reused afterwards. Needs `go` only for that first build.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.7.7
bin=.toolchain/bin/actionlint
if ! { [ -x "$bin" ] && "$bin" -version 2>/dev/null | head -n 1 | grep -qx "$version"; }; then
  # Go's own tarball installs to /usr/local/go, often not on a minimal PATH (cron, CI, env -i).
  go=$(command -v go || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; } || true)
  [ -n "$go" ] || { echo "actionlint: needs Go to build actionlint $version once (https://go.dev/dl), or put it at $bin" >&2; exit 1; }
  echo "actionlint: building $version into $bin (once)" >&2
  mkdir -p .toolchain/bin
  GOBIN="$PWD/.toolchain/bin" GOFLAGS=-mod=mod "$go" install "github.com/rhysd/actionlint/cmd/actionlint@$version" >/dev/null 2>&1 \
    || { echo "actionlint: go install github.com/rhysd/actionlint/cmd/actionlint@$version failed" >&2; exit 1; }
fi
"$bin" .github/workflows/*.yml
echo "actionlint $version: $(ls .github/workflows/*.yml | tr '\n' ' ')ok" >&2
