#!/bin/bash
# Scripted ssh login with the options that suit tests (works inside or outside a sandbox):
#   tools/sandbox/ssh-test.sh USER IDENTITY_FILE PORT [REMOTE_CMD...]
# Key-only, never prompts (stdin /dev/null, no tty via setsid), ignores ~/.ssh/config and agents,
# still offers keyboard-interactive so a PAM auth-stage hook runs (BATCH=1 to use BatchMode=yes).
set -euo pipefail
user=${1:?usage: ssh-test.sh USER IDENTITY_FILE PORT [CMD...]}
key=${2:?identity file}
port=${3:?port}
shift 3
batch=no
[[ ${BATCH:-} == 1 ]] && batch=yes
exec setsid -w env -u SSH_AUTH_SOCK -u SSH_ASKPASS -u DISPLAY SSH_ASKPASS_REQUIRE=never \
  ssh -F /dev/null -i "$key" -o IdentitiesOnly=yes -o IdentityAgent=none \
  -o BatchMode=$batch -o PreferredAuthentications=publickey,keyboard-interactive \
  -o NumberOfPasswordPrompts=1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o LogLevel=ERROR -o ConnectTimeout=5 -p "$port" "$user@127.0.0.1" -- "${@:-true}" </dev/null
