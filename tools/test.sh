#!/usr/bin/env bash
# The whole test suite from a fresh clone (`npm test`, and what .ci/run runs), installing what it needs:
#   Node >= 22 and the pinned npm (tools/toolchain.sh; into .toolchain/ only when the machine's are
#   older or different), system packages (root only; tools/sandbox/install-deps.sh: installed, never
#   enabled or started), `npm ci` exactly as the lock says, the moto virtualenv in .venv/, then a
#   build, type checks, lint and format checks, the API reports, unit, integration (moto) and e2e
#   (real sshd in a namespace sandbox) tests,
#   and the checks that a newcomer's clone works: the lock installs on Linux, macOS and Windows, the
#   packed CLI installs on its own, and the run leaves `git status` as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

step() { printf '\n==> %s\n' "$*" >&2; }
status=0 checks_passed=0 checks_failed=0
check() { # check NAME CMD...: a non-jest check that counts in the closing line
  local name=$1; shift
  if "$@"; then checks_passed=$((checks_passed + 1)); else echo "FAILED: $name" >&2; checks_failed=$((checks_failed + 1)); status=1; fi
}
git_state() { git status --porcelain --untracked-files=all 2>/dev/null || true; }
before=$(git_state)
# The machine's own ssh/cron services: enabled links and running daemons (the sandboxes' are gone
# by the end). The run may install the packages, but must leave the services as it found them.
service_state() {
  ls -1 /etc/systemd/system/*.wants/ 2>/dev/null | grep -E '^(ssh|sshd|cron)\.(service|socket)$' | sort
  ls -1 /etc/rc[2-5].d/ 2>/dev/null | grep -E '^S[0-9]+(ssh|cron)$' | sort
  # Daemons of this pid namespace only: a sandbox's sshd (another test run's) lives in its own.
  local pid ns
  ns=$(readlink /proc/self/ns/pid)
  for pid in $(pgrep -x sshd; pgrep -x cron); do
    [ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" = "$ns" ] && echo "$(cat "/proc/$pid/comm") running"
  done | sort -u
  true
}
services_before=$(service_state)

step "toolchain"
source tools/toolchain.sh
echo "node $(node --version), npm $(npm --version)" >&2

if [ "$(id -u)" = 0 ]; then
  step "system packages"
  bash tools/sandbox/install-deps.sh
  # The EFS e2e tests' NFS server and FUSE client (built once into .toolchain/fuse-nfs; never fails the run).
  bash tools/nfs/setup.sh
  # authselect for the RHEL-like agent-mode e2e test (built once into .toolchain/authselect; never fails the run).
  bash tools/authselect/setup.sh
fi

step "npm dependencies (npm ci)"
bash tools/npm-ci.sh

step "moto virtualenv"
bash tools/moto/setup-venv.sh

step "build"
npx nx run-many -t build --output-style=static

step "type check"
npx nx run-many -t typecheck --output-style=static

step "lint (eslint, type-checked rules) and format (prettier)"
check "eslint" npx eslint --max-warnings 0 packages tools bench
check "prettier" npx prettier --check --log-level warn "**/*.{ts,mts,cts,js,mjs,cjs}"

step "public API of each library, against its committed report"
check "api reports" bash tools/api-report.sh

step "nx: affected graph and cache (a second build + typecheck comes from the cache)"
check "nx affected + cache" bash tools/nx-check.sh

mkdir -p .tmp
rm -f .tmp/jest-*.json
step "unit tests"
npx jest --selectProjects unit --json --outputFile=.tmp/jest-unit.json || status=1
step "each package's own test target (nx run-many -t test)"
check "nx run-many -t test" npx nx run-many -t test --output-style=static
step "integration tests (moto)"
npx jest --selectProjects integration --runInBand --json --outputFile=.tmp/jest-integration.json || status=1
step "end-to-end tests (sshd sandbox)"
npx jest --selectProjects e2e --runInBand --json --outputFile=.tmp/jest-e2e.json || status=1

step "the lock installs on every platform"
for platform in linux/x64 darwin/arm64 win32/x64; do
  check "npm ci --dry-run for $platform" bash tools/npm-ci.sh --dry-run "${platform%/*}" "${platform#*/}"
done

step "release: dry run (first release at the versions on disk, changelogs per package)"
check "release dry run" node tools/release-check.mjs

step "GitHub workflows (actionlint)"
check "actionlint" bash tools/actionlint.sh

step "npm pack + global install of @keymaker/cli"
check "pack test" bash tools/pack-test.sh

step "the machine's ssh and cron services as the run found them"
services_after=$(service_state)
if [ "$services_before" = "$services_after" ]; then
  echo "services: as before the run (${services_after:-none enabled or running})" | tr '\n' ' ' >&2; echo >&2
  checks_passed=$((checks_passed + 1))
else
  echo "FAILED: the run changed the machine's services:" >&2
  diff <(echo "$services_before") <(echo "$services_after") >&2 || true
  checks_failed=$((checks_failed + 1)); status=1
fi

step "git status unchanged by the run"
after=$(git_state)
if [ "$before" = "$after" ]; then
  echo "git status: as before the run" >&2
  checks_passed=$((checks_passed + 1))
else
  echo "FAILED: the run changed git status:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  checks_failed=$((checks_failed + 1)); status=1
fi

node tools/jest-summary.cjs .tmp/jest-unit.json .tmp/jest-integration.json .tmp/jest-e2e.json \
  --extra-passed "$checks_passed" --extra-failed "$checks_failed"
exit "$status"
