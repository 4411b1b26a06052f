#!/usr/bin/env bash
# The benchmark, one command (also `npm run bench`). Linux, root (the syncs run in throw-away
# namespaces made by tools/sandbox). Installs what it needs, builds, measures, and writes
# bench/results/<date>-<machine>.md and bench/results/latest.md. See bench/README.md.
#
#   bash bench/run.sh [--runs 20] [--delay-runs 10] [--delay-ms 50] [--steady-runs 3] [--no-latest] ...
#
# Scratch (virtualenvs, logs, raw JSON) lives in bench/.work/ (gitignored).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WORK="$REPO/bench/.work"
mkdir -p "$WORK"
KEYMAKER1_VERSION="1.1.0"
VENV1="$WORK/venv-keymaker1"
say() { echo "[run.sh] $*" >&2; }

usage() {
  cat <<'USAGE'
usage: bash bench/run.sh [--runs N] [--delay-runs N] [--delay-ms MS] [--steady-runs N] [--net-runs N]
                         [--rtts 0,20,80] [--users N] [--groups N] [--out-dir DIR] [--no-latest]
                         [--net-only | --sync-only]
Measures keymaker against keymaker 1.1.0 in one run and writes bench/results/<date>-<machine>.md and
bench/results/latest.md (not with --no-latest). --net-only / --sync-only run that phase alone and print
its raw JSON. See bench/README.md for every figure.
USAGE
}
for arg in "$@"; do
  if [[ $arg == --help || $arg == -h ]]; then usage; exit 0; fi
done

[[ $(uname -s) == Linux ]] || { say "needs Linux (namespaces, shadow-utils)"; exit 2; }
[[ $(id -u) == 0 ]] || { say "needs root: the sync measurements create 1,000 accounts inside a throw-away namespace (tools/sandbox)"; exit 2; }

# 1. OS tools: unshare/overlayfs/ssh-keygen (tools/sandbox), GNU time for peak RSS, python3-venv.
bash tools/sandbox/install-deps.sh
if [[ ! -x /usr/bin/time ]] || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  say "installing Debian packages: time python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time python3-venv >/dev/null
fi

# 2. Node dependencies and the build (dist/keymaker-host.js is what gets measured).
source tools/toolchain.sh
bash tools/npm-ci.sh
say "building (nx run-many -t build)"
NX_DAEMON=false npx nx run-many -t build --outputStyle=static >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
[[ -f packages/cli/dist/keymaker-host.js ]] || { say "build produced no packages/cli/dist/keymaker-host.js"; exit 1; }

# 3. moto (the IAM/STS backend), pinned by tools/moto/setup-venv.sh.
bash tools/moto/setup-venv.sh

# 4. The original: keymaker 1.1.0 from PyPI in its own virtualenv, with a boto3 recent enough to honour
#    AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL_STS (botocore >= 1.31.68).
installed1() { [[ -x $VENV1/bin/keymaker ]] && "$VENV1/bin/python" -c 'import importlib.metadata as m; print(m.version("keymaker"))' 2>/dev/null; }
if [[ "$(installed1 || true)" != "$KEYMAKER1_VERSION" ]]; then
  say "installing keymaker==$KEYMAKER1_VERSION and boto3 into $VENV1"
  rm -rf "$VENV1"
  python3 -m venv "$VENV1"
  "$VENV1/bin/python" -m pip install --quiet "keymaker==$KEYMAKER1_VERSION" "boto3>=1.34" >&2
fi
[[ "$(installed1 || true)" == "$KEYMAKER1_VERSION" ]] || { say "keymaker $KEYMAKER1_VERSION did not install"; exit 1; }

# 5. Measure and report.
if [[ ${npm_lifecycle_event:-} == bench ]]; then BENCH_COMMAND="npm run bench${*:+ -- $*}"; else BENCH_COMMAND="bash bench/run.sh${*:+ $*}"; fi
export BENCH_COMMAND
exec node bench/bench.mjs "$@"
