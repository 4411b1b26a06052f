/*
 * sshd's AuthorizedKeysCommand in agent mode, as the text install writes to a root-owned path
 * (keymaker-keys-client next to the compat wrapper). A POSIX sh script around `curl --unix-socket`:
 * it starts in a few milliseconds where a node client needs ~100 (measured; see the script's comment).
 */
export const KEYS_CLIENT_SCRIPT = `#!/bin/sh
# sshd's AuthorizedKeysCommand in agent mode:
#   AuthorizedKeysCommand /usr/lib/keymaker/keymaker-keys-client %u %f
# Asks the keymaker agent (keys-server.ts) over its Unix socket and prints its answer: one
# authorized_keys line per key, or nothing. Any error (bad arguments, agent unreachable, refusal,
# doubt, timeout) prints nothing and exits non-zero. Nothing is printed until the whole answer is in.
#
# Exit codes: 0 answered; 2 bad arguments; otherwise curl's (7 = agent not reachable, 22 = refused or
# in doubt (HTTP 4xx/5xx), 28 = timeout). Only 7 may lead a wrapper to today's direct lookup, and only
# for a local account; 22 and 28 must not.
#
# curl, not node: median of 20 runs against a socket server, this script 26 ms, bare curl 21 ms, a
# minimal node http client 95 ms (Node 22) / 131 ms (Node 20), on a shared, loaded machine. -q (first!)
# ignores any .curlrc of the AuthorizedKeysCommandUser; --noproxy stops proxy variables.
# KEYMAKER_KEYS_SOCKET is for tests: sshd runs this command with an environment of its own.
PATH=/usr/bin:/bin
export PATH
socket=\${KEYMAKER_KEYS_SOCKET:-/run/keymaker/keys.sock}
max_time=\${KEYMAKER_KEYS_MAX_TIME:-3}
user=$1
fingerprint=\${2-}
[ $# -ge 1 ] && [ $# -le 2 ] || exit 2
# A strict Linux name, checked here too: nothing else may reach the URL.
case $user in
  '' | [!a-z_]* | *[!a-z0-9_.-]*) exit 2 ;;
esac
[ \${#user} -le 32 ] || exit 2
query=
if [ -n "$fingerprint" ]; then
  case $fingerprint in
    SHA256:*) ;;
    *) exit 2 ;;
  esac
  b64=\${fingerprint#SHA256:}
  case $b64 in
    *[!A-Za-z0-9+/]*) exit 2 ;;
  esac
  [ \${#b64} -eq 43 ] || exit 2
  # '+' and '/' percent-encoded for the query string.
  enc=$(printf '%s' "$b64" | sed -e 's/+/%2B/g' -e 's#/#%2F#g')
  query="?fingerprint=SHA256%3A$enc"
fi
out=$(curl -q -s --fail --noproxy '*' --max-time "$max_time" --unix-socket "$socket" "http://localhost/keys/$user$query") || exit $?
[ -z "$out" ] || printf '%s\\n' "$out"
`;
