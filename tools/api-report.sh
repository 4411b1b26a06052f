#!/usr/bin/env bash
# The public API of each library, checked against its committed report (packages/*/api/*.api.md):
# a change to what a package exports fails here until the report is updated with
#   bash tools/api-report.sh --update
# so it shows in review. Runs on the built declarations (dist/index.d.ts): build first. Other
# packages are read from their built declarations too (api-extractor.base.json overrides the tsconfig,
# whose paths point at their sources).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=()
[ "${1:-}" = --update ] && mode=(--local)
status=0
for config in packages/*/api-extractor.json; do
  dir=$(dirname "$config")
  name=$(basename "$dir")
  mkdir -p "$dir/api"
  if out=$(cd "$dir" && npx api-extractor run "${mode[@]}" 2>&1); then
    echo "api report: @keymaker/$name matches $dir/api/$name.api.md" >&2
  else
    echo "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E 'Warning|Error' >&2 || true
    echo "api report: the public API of @keymaker/$name changed; review it, then run: bash tools/api-report.sh --update" >&2
    status=1
  fi
done
exit "$status"
