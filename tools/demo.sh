#!/usr/bin/env bash
# The main job, end to end, on this machine (Linux, root): moto plays IAM, an IAM user gets an SSH
# key, a sandboxed sshd (own mount + pid namespace; the machine's /etc and services are untouched)
# gets `keymaker install` (agent mode: the IAM user logs in on her FIRST connection, served by the
# agent through NSS), then the same host is reinstalled in compat mode, where a first SSH connection
# creates the account (and fails, by design: sshd looked the user up before it existed) and a second
# one logs in and runs `id`. Exits 0 only if both modes' logins worked.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export NX_DAEMON=false NX_NO_CLOUD=true

step() { printf '\n==> %s\n' "$*" >&2; }

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  echo "demo.sh: run as root on Linux (it starts sshd in a namespace sandbox and installs apt packages)" >&2
  exit 2
fi

git_state() { git status --porcelain --untracked-files=all 2>/dev/null || true; }
git_before=$(git_state)

step "toolchain (Node >= 22, the pinned npm)"
source tools/toolchain.sh
echo "node $(node --version), npm $(npm --version)" >&2
step "system packages (openssh-server, openssh-client, cron: installed, services not started or enabled)"
bash tools/sandbox/install-deps.sh
step "npm dependencies (npm ci)"
bash tools/npm-ci.sh
step "moto (fake AWS IAM/STS) virtualenv"
bash tools/moto/setup-venv.sh
step "build the keymaker CLI and host bundle"
(cd packages/cli && npx tsup >/dev/null)
ls -l packages/cli/dist/keymaker.js packages/cli/dist/keymaker-host.js >&2

work=$(mktemp -d /tmp/keymaker-demo.XXXXXX)
moto_pid=
cleanup() {
  [ -n "$moto_pid" ] && kill -TERM "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "start moto as IAM"
coproc MOTO { exec node tools/moto/server.cjs; }
moto_pid=$MOTO_PID
read -r endpoint <&"${MOTO[0]}"
echo "IAM/STS endpoint: $endpoint" >&2

step "seed IAM: user alice with an SSH key; an instance role for the host"
ssh-keygen -q -t ed25519 -N '' -C alice@demo -f "$work/alice"
node tools/demo-seed.mjs "$endpoint" alice "$work/alice.pub" "$work/credentials"
echo "alice's key: $(cut -d' ' -f1,2 "$work/alice.pub" | cut -c1-40)..." >&2

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

step "sandbox: sshd on 127.0.0.1:$port; keymaker install in agent mode, then in compat mode"
set +e
tools/sandbox/run.sh bash -s "$repo" "$endpoint" "$work" "$port" <<'INSIDE'
set -euo pipefail
repo=$1 endpoint=$2 work=$3 port=$4
say() { printf -- '--> %s\n' "$*" >&2; }
listening() { grep -c "Server listening" "/run/sshd-$port.log" || true; }

say "start sshd (Debian's stock config)"
"$repo/tools/sandbox/sshd-start.sh" "$port"
getent passwd alice >/dev/null && { echo "alice already exists?" >&2; exit 1; }
say "alice has no local account: $(getent passwd alice || echo 'getent passwd alice -> nothing')"

common=(--region us-east-1 --iam-endpoint "$endpoint" --sts-endpoint "$endpoint"
  --credentials-file "$work/credentials" --deadline-ms 8000 --sshd-pid-file "/run/sshd-$port.pid")
km() { node "$repo/packages/cli/dist/keymaker.js" "$@"; }
reloaded() { for _ in $(seq 100); do [ "$(listening)" -gt "$1" ] && break; sleep 0.05; done; }
fail() { say "$1 FAILED; sshd log:"; sed 's/^/      /' "/run/sshd-$port.log" >&2; exit 1; }

say "keymaker install (the default: agent mode where libnss-systemd is available)"
before=$(listening)
km install "${common[@]}"
reloaded "$before"
say "effective sshd settings (sshd -T):"
sshd -T | grep -E '^(authorizedkeyscommand|authorizedkeyscommanduser) ' | sed 's/^/      /' >&2
say "alice through NSS, served by the agent: $(getent passwd alice || echo 'not found')"

say "agent mode: FIRST login as alice, running id (one connection, publickey only)"
set +e
out=$("$repo/tools/sandbox/ssh-test.sh" alice "$work/alice" "$port" id 2>&1)
rc=$?
set -e
printf '      %s\n' "$out" >&2
{ [ $rc -eq 0 ] && [[ $out == *"(alice)"* ]]; } || fail "agent mode first login"
say "agent mode: first login worked; /etc/passwd has $(grep -c '^alice:' /etc/passwd || true) line(s) for alice"
km status | sed 's/^/      /' >&2 || true

say "keymaker uninstall, then keymaker install --mode compat (hosts without libnss-systemd, 1.x fleets)"
before=$(listening)
km uninstall --sshd-pid-file "/run/sshd-$port.pid"
reloaded "$before"
before=$(listening)
km install "${common[@]}" --mode compat
reloaded "$before"
say "effective sshd settings (sshd -T):"
sshd -T | grep -E '^(authorizedkeyscommand|authorizedkeyscommanduser|kbdinteractiveauthentication|authenticationmethods) ' | sed 's/^/      /' >&2

say "compat mode: first login as alice: the PAM hook creates the account; this connection fails by design"
set +e
"$repo/tools/sandbox/ssh-test.sh" alice "$work/alice" "$port" id 2>&1 | sed 's/^/      /' >&2
set -e
say "alice now: $(getent passwd alice || echo 'still no account')"

say "compat mode: second login as alice, running id"
set +e
out=$("$repo/tools/sandbox/ssh-test.sh" alice "$work/alice" "$port" id 2>&1)
rc=$?
set -e
printf '      %s\n' "$out" >&2
{ [ $rc -eq 0 ] && [[ $out == *"(alice)"* ]]; } || fail "compat mode second login"
say "compat mode: second login worked"
INSIDE
rc=$?
set -e
if [ "$(git_state)" != "$git_before" ]; then
  echo "demo.sh: the demo changed git status (it must leave a clone as it found it):" >&2
  diff <(echo "$git_before") <(git_state) >&2 || true
  rc=1
fi
if [ $rc -eq 0 ]; then
  step "demo passed: an IAM user with a key logged in over real SSH, on her first connection in agent mode and in compat mode"
else
  step "demo FAILED (exit $rc)"
fi
exit $rc
