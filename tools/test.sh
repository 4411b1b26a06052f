#!/usr/bin/env bash
# The whole test suite from a fresh clone, installing what it needs:
#   system packages (openssh-server/-client, cron; root only), npm ci, the moto
#   virtualenv, a build, type checks, then unit, integration (moto) and e2e
#   (real sshd in a namespace sandbox) tests, and the npm-pack install check.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$(id -u)" = 0 ]; then
  step "system packages"
  bash tools/sandbox/install-deps.sh
fi

step "npm dependencies"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm 11 here records no entries for other platforms' optional packages (nx,
  # rollup, esbuild natives), and then `npm ci` calls the lock out of sync
  # (npm/cli#9342). `npm install` keeps every version the lock pins.
  npm ci --no-audit --no-fund || npm install --no-audit --no-fund
fi

step "moto virtualenv"
bash tools/moto/setup-venv.sh

step "build"
npx nx run-many -t build --output-style=static

step "type check"
npx nx run-many -t typecheck --output-style=static

mkdir -p .tmp
rm -f .tmp/jest-*.json
status=0
step "unit tests"
npx jest --selectProjects unit --json --outputFile=.tmp/jest-unit.json || status=1
step "integration tests (moto)"
npx jest --selectProjects integration --runInBand --json --outputFile=.tmp/jest-integration.json || status=1
step "end-to-end tests (sshd sandbox)"
npx jest --selectProjects e2e --runInBand --json --outputFile=.tmp/jest-e2e.json || status=1

step "npm pack + global install of @keymaker/cli"
if bash tools/pack-test.sh; then pack=1; else pack=0; status=1; fi

node tools/jest-summary.cjs .tmp/jest-unit.json .tmp/jest-integration.json .tmp/jest-e2e.json --extra-passed "$pack" --extra-failed "$((1 - pack))"
exit "$status"
