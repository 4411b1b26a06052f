#!/bin/bash
# Inside a sandbox (tools/sandbox/run.sh): start sshd on 127.0.0.1:PORT in the background and
# wait until it listens. Log: /run/sshd-PORT.log. Extra args go to sshd (e.g. -o LogLevel=VERBOSE).
#   tools/sandbox/sshd-start.sh 2222
set -euo pipefail
port=${1:?usage: sshd-start.sh PORT [SSHD_ARGS...]}
shift
log=/run/sshd-$port.log
: >"$log"
/usr/sbin/sshd -E "$log" -p "$port" -o ListenAddress=127.0.0.1 -o PidFile="/run/sshd-$port.pid" "$@"
for _ in $(seq 100); do
  grep -q "Server listening on 127.0.0.1 port $port" "$log" && exit 0
  sleep 0.05
done
echo "sshd-start.sh: sshd did not start listening on port $port; log:" >&2
cat "$log" >&2
exit 1
