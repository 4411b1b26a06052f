#!/bin/bash
# PID 1 of a keymaker test sandbox. Run ONLY through unshare (see run.sh / sandbox.ts):
#   unshare --mount --pid --fork --kill-child --mount-proc init.sh SCRATCH_DIR [CMD...]
# Inside the new mount namespace (propagation private, so nothing leaks to the host):
#   - a tmpfs on SCRATCH_DIR holds the overlay upper/work dirs (gone with the namespace)
#   - overlayfs over /etc /usr/local /var /opt /root (writes go to the upper dirs), and over /usr itself
#     when KEYMAKER_SANDBOX_OVERLAY_USR=1 (package installs: dpkg writes /usr, its state is in /var/lib/dpkg)
#   - tmpfs over /home and /run, with /run/sshd (sshd needs it) and /run/lock
# Without CMD: prints READY on stdout, then waits until stdin is closed (EOF) and exits,
# which kills every process of the pid namespace (sshd included).
# With CMD: runs CMD and exits with its status (the namespace dies with it).
set -euo pipefail
scratch=${1:?usage: init.sh SCRATCH_DIR [CMD...]}
shift
[[ $$ == 1 ]] || { echo "init.sh: must be PID 1 of a new pid namespace (run it via unshare)" >&2; exit 2; }

mount -t tmpfs -o mode=700 keymaker-sandbox "$scratch"
dirs=(etc usr/local var opt root)
# /usr before /usr/local, so the /usr/local overlay sits on top of the /usr one.
if [[ ${KEYMAKER_SANDBOX_OVERLAY_USR:-} == 1 ]]; then dirs=(usr "${dirs[@]}"); fi
unset KEYMAKER_SANDBOX_OVERLAY_USR
for d in "${dirs[@]}"; do
  [[ -d /$d ]] || continue
  n=${d//\//_}
  mkdir -p "$scratch/upper/$n" "$scratch/work/$n"
  mount -t overlay -o "lowerdir=/$d,upperdir=$scratch/upper/$n,workdir=$scratch/work/$n" "sandbox-$n" "/$d"
done
mount -t tmpfs -o mode=755 sandbox-home /home
mount -t tmpfs -o mode=755 sandbox-run /run
mkdir -m 755 /run/sshd
mkdir -m 1777 /run/lock
# The Node the caller runs (maybe provisioned into a clone under /tmp) is /run/keymaker-sandbox/bin/node,
# first on the sandbox's PATH, as on a host where Node is installed system-wide: sshd's safe-path rule
# refuses commands below a world-writable directory such as /tmp, and `keymaker install` records the
# node it runs under. /run (a root-owned tmpfs here) keeps it out of the overlays tests inspect.
if [[ -n ${KEYMAKER_SANDBOX_NODE:-} ]]; then
  mkdir -p -m 755 /run/keymaker-sandbox/bin
  : >/run/keymaker-sandbox/bin/node
  mount --bind "$KEYMAKER_SANDBOX_NODE" /run/keymaker-sandbox/bin/node
fi
unset KEYMAKER_SANDBOX_NODE
# A network namespace of its own (sandbox.ts network: 'private'): loopback up, nothing else.
if [[ ${KEYMAKER_SANDBOX_NET:-} == private ]]; then ip link set lo up; fi
unset KEYMAKER_SANDBOX_NET

if (($#)); then
  set +e
  "$@"
  exit $?
fi
echo READY
read -r _ || true
