#!/bin/bash
# Run CMD... inside a throw-away sandbox (own mount + pid namespace; overlay over /etc,
# /usr/local, /var, /opt, /root; tmpfs over /home and /run; host network). Exit status is CMD's.
# Everything CMD started (sshd, cron, ...) is killed when CMD exits. Needs root.
#   tools/sandbox/run.sh bash -c 'useradd -m alice && tools/sandbox/sshd-start.sh 2222 && ...'
# Writes under /tmp (and any other non-overlaid path) DO reach the host.
set -euo pipefail
(($#)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch=$(mktemp -d /tmp/keymaker-sandbox.XXXXXX)
trap 'rmdir "$scratch" 2>/dev/null || rm -rf "$scratch"' EXIT
set +e
# This shell's node (tools/toolchain.sh may have provisioned it) is /run/keymaker-sandbox/bin/node inside (init.sh).
node=$(command -v node || true)
export KEYMAKER_SANDBOX_NODE=${node:+$(readlink -f "$node")}
PATH="/run/keymaker-sandbox/bin:$PATH" unshare --mount --pid --fork --kill-child --mount-proc "$here/init.sh" "$scratch" "$@"
rc=$?
exit $rc
