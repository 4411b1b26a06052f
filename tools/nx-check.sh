#!/usr/bin/env bash
# Nx knows what each task depends on (nx.json namedInputs/targetDefaults):
#  - `nx affected` means something: a change under tools/, jest.config.cjs or a tsconfig affects every
#    project; a change in one package affects it and its dependents only;
#  - with nothing changed, a second `nx run-many -t build typecheck` is served entirely from the cache
#    (run after the build and type-check steps of tools/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
fail() { echo "nx-check: $*" >&2; exit 1; }

all=$(npx nx show projects | sort | tr '\n' ' ')
affected() { npx nx show projects --affected --files="$1" | sort | tr '\n' ' '; }
for f in tools/test.sh tools/moto/server.cjs jest.config.cjs tsconfig.base.json tsconfig.jest.json; do
  [ "$(affected "$f")" = "$all" ] || fail "a change to $f should affect all projects ($all), affects: $(affected "$f")"
done
[ "$(affected packages/cli/src/main.ts)" = "@keymaker/cli " ] || fail "a change in cli should affect only cli, affects: $(affected packages/cli/src/main.ts)"
[ "$(affected packages/core/src/index.ts)" = "$all" ] || fail "a change in core should affect core and its dependents"
echo "nx-check: affected: tools/, jest.config.cjs, tsconfigs -> all projects; packages/cli -> cli only" >&2

npx nx run-many -t build typecheck --output-style=static >/dev/null 2>&1 || fail "build/typecheck failed"
out=$(npx nx run-many -t build typecheck --output-style=static 2>&1) || { echo "$out" >&2; fail "build/typecheck failed"; }
tasks=$(( $(npx nx show projects --with-target typecheck | wc -l) * 2 ))
grep -q "Nx read the output from the cache instead of running the command for $tasks out of $tasks tasks" <<<"$out" \
  || { grep -E "^> nx run|Cache:" <<<"$out" >&2; fail "a second build + typecheck with nothing changed was not served entirely from the cache"; }
echo "nx-check: second build + typecheck: all $tasks tasks read from the cache" >&2
