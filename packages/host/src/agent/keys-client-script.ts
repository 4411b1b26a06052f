/*
 * sshd's AuthorizedKeysCommand in agent mode, as the text install writes to a root-owned path
 * (keymaker-keys-client next to the compat wrapper). A POSIX sh script around `curl --unix-socket`:
 * it starts in a few milliseconds where a node client needs ~100 (measured; see the script's comment).
 *
 * Accounts in /etc/passwd (compat-mode accounts of a host migrated from keymaker 1.x, local users) are not the
 * agent's: it answers 421 for them, and the script hands the login to the compat lookup (install writes its path
 * in), which serves only accounts keymaker recorded as its own. The same happens when the agent is not running
 * (curl exit 7): IAM-only users then do not resolve through NSS, so the compat lookup refuses them, and local
 * accounts keep working. A refusal, doubt or timeout from the agent never falls back.
 */
export function keysClientScript(fallback?: string): string {
  if (fallback !== undefined && !/^\/[A-Za-z0-9._/-]+$/.test(fallback))
    throw new RangeError(`keys client: fallback ${JSON.stringify(fallback)} is not a plain absolute path`);
  return `#!/bin/sh
# sshd's AuthorizedKeysCommand in agent mode:
#   AuthorizedKeysCommand /usr/local/sbin/keymaker-keys-client %u %f
# Asks the keymaker agent (keys-server.ts) over its Unix socket and prints its answer: one
# authorized_keys line per key, or nothing. Any error (bad arguments, refusal, doubt, timeout)
# prints nothing and exits non-zero. Nothing is printed until the whole answer is in.
#
# An account the agent does not serve because it is in /etc/passwd (HTTP 421), or no agent running
# (curl exit 7), goes to the compat lookup, which serves only accounts keymaker recorded as its own.
#
# Exit codes: 0 answered; 2 bad arguments; 22 refused or in doubt (HTTP 4xx/5xx); otherwise curl's
# (7 = agent not reachable, 28 = timeout), or the compat lookup's.
#
# curl, not node: median of 20 runs against a socket server, this script 26 ms, bare curl 21 ms, a
# minimal node http client 95 ms (Node 22) / 131 ms (Node 20), on a shared, loaded machine. -q (first!)
# ignores any .curlrc of the AuthorizedKeysCommandUser; --noproxy stops proxy variables.
# KEYMAKER_KEYS_SOCKET is for tests: sshd runs this command with an environment of its own.
PATH=/usr/bin:/bin
export PATH
socket=\${KEYMAKER_KEYS_SOCKET:-/run/keymaker/keys.sock}
max_time=\${KEYMAKER_KEYS_MAX_TIME:-3}
fallback=${fallback ?? ''}
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
local_lookup() {
  [ -n "$fallback" ] || exit "$1"
  if [ -n "$fingerprint" ]; then exec "$fallback" "$user" "$fingerprint"; else exec "$fallback" "$user"; fi
}
# The body, then the status code on a line of its own.
out=$(curl -q -s --noproxy '*' --max-time "$max_time" --unix-socket "$socket" -w '\\n%{http_code}' "http://localhost/keys/$user$query")
rc=$?
[ "$rc" -eq 7 ] && local_lookup 7
[ "$rc" -eq 0 ] || exit "$rc"
code=\${out##*'
'}
case $code in
  200) ;;
  421) local_lookup 22 ;;
  *) exit 22 ;;
esac
body=\${out%'
'*}
body=\${body%'
'}
[ -z "$body" ] || printf '%s\\n' "$body"
`;
}

/** The script without a fallback: every answer comes from the agent. */
export const KEYS_CLIENT_SCRIPT = keysClientScript();
