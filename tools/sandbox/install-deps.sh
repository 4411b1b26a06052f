#!/bin/bash
# Install what tools/sandbox needs (Debian/Ubuntu, root). A fast no-op when all is present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [[ -x $1 ]]; }
have /usr/sbin/sshd || need+=(openssh-server)
{ have ssh && have ssh-keygen; } || need+=(openssh-client)
have /usr/sbin/cron || need+=(cron)
have ip || need+=(iproute2)
{ have unshare && have nsenter && have setsid && have findmnt; } || need+=(util-linux)
if ((${#need[@]})); then
  echo "install-deps.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends openssh-server openssh-client cron iproute2 util-linux
fi
