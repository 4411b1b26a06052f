#!/usr/bin/env bash
# Idempotently create <repo>/.venv/moto with moto[server] pinned to MOTO_VERSION.
# Fast no-op when the venv already has that version. Prints one line to stderr.
set -euo pipefail

MOTO_VERSION="5.2.5"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${REPO_ROOT}/.venv/moto"
PYTHON="${PYTHON:-python3}"

installed_version() {
  [ -x "${VENV}/bin/python" ] && [ -x "${VENV}/bin/moto_server" ] || return 1
  # Read the installed version from package metadata (cheap; does not import moto).
  "${VENV}/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null
}

if [ "$(installed_version || true)" = "${MOTO_VERSION}" ]; then
  echo "moto ${MOTO_VERSION} already installed in ${VENV}" >&2
  exit 0
fi

if [ ! -x "${VENV}/bin/python" ]; then
  mkdir -p "$(dirname "${VENV}")"
  "${PYTHON}" -m venv "${VENV}"
fi
"${VENV}/bin/python" -m pip install --quiet "moto[server]==${MOTO_VERSION}" >&2

if [ "$(installed_version || true)" != "${MOTO_VERSION}" ]; then
  echo "failed to install moto ${MOTO_VERSION} in ${VENV}" >&2
  exit 1
fi
echo "installed moto ${MOTO_VERSION} in ${VENV}" >&2
