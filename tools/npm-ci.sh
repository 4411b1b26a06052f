#!/usr/bin/env bash
# `npm ci`, and nothing else: the lock decides every version, and a lock out of step with package.json
# is a failure with the fix in one line, never a silent `npm install` that rewrites it.
#   bash tools/npm-ci.sh                     install (skipped when node_modules matches the lock)
#   bash tools/npm-ci.sh --dry-run OS CPU    would `npm ci` accept the lock on that platform?
# Expects tools/toolchain.sh to have been sourced (the pinned npm on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
fix="regenerate it with the pinned npm: source tools/toolchain.sh && npm install --package-lock-only, then commit package-lock.json"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if [ "${1:-}" = --dry-run ]; then
  os=$2 cpu=$3
  if npm ci --dry-run --ignore-scripts --no-audit --no-fund --os="$os" --cpu="$cpu" >"$log" 2>&1; then
    echo "npm ci --dry-run --os=$os --cpu=$cpu: the lock installs" >&2
    exit 0
  fi
  echo "npm-ci: package-lock.json does not install on $os/$cpu ($(grep -m1 'npm error' "$log" | sed 's/^npm error //')); $fix" >&2
  exit 1
fi

# node_modules/.package-lock.json is npm's record of what it installed; when it is newer than the
# lock, the tree matches it.
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "node_modules matches package-lock.json" >&2
  exit 0
fi
if npm ci --no-audit --no-fund >"$log" 2>&1; then
  grep -v '^$' "$log" | tail -n 1 >&2
  exit 0
fi
cat "$log" >&2
echo "npm-ci: npm ci refused package-lock.json ($(grep -m1 'npm error' "$log" | sed 's/^npm error //')); $fix" >&2
exit 1
