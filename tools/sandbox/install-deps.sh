#!/bin/bash
# Install what tools/sandbox needs (Debian/Ubuntu, root). A fast no-op when all is present.
# The packages are installed for their binaries only: the tests run sshd and cron inside a throw-away
# namespace. Their services on the machine itself are neither started (a policy-rc.d that refuses
# every start during the install) nor left enabled (disabled again right after, for the packages this
# script installed; an administrator's own enabled services are not touched).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [[ -x $1 ]]; }
have /usr/sbin/sshd || need+=(openssh-server)
{ have ssh && have ssh-keygen; } || need+=(openssh-client)
have /usr/sbin/cron || need+=(cron)
have ip || need+=(iproute2)
# sudo: the sudoers drop-in is checked with the real visudo (issue 12).
have /usr/sbin/visudo || need+=(sudo)
{ have unshare && have nsenter && have setsid && have findmnt; } || need+=(util-linux)
# The agent's e2e tests resolve users through the real NSS module (it needs no systemd as PID 1).
compgen -G '/lib/*/libnss_systemd.so.2' >/dev/null || compgen -G '/usr/lib/*/libnss_systemd.so.2' >/dev/null || need+=(libnss-systemd)
((${#need[@]})) || exit 0

echo "install-deps.sh: installing ${need[*]} (services not started, not enabled)" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [[ -e $policy ]]; then
  saved_policy=$(mktemp) && cp -p "$policy" "$saved_policy"
else
  saved_policy=
fi
restore_policy() {
  if [[ -n $saved_policy ]]; then mv -f "$saved_policy" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# install-deps.sh (keymaker tests): no service starts during this install\nexit 101\n' >"$policy"
chmod 755 "$policy"

# libnss-systemd's postinst adds `systemd` to this machine's nsswitch.conf: the tests write their own
# inside the sandbox, so the machine's file is put back as it was.
nsswitch_saved=$(mktemp) && cp -p /etc/nsswitch.conf "$nsswitch_saved" 2>/dev/null || nsswitch_saved=
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [[ -n $nsswitch_saved ]]; then
  cmp -s "$nsswitch_saved" /etc/nsswitch.conf || cp -p "$nsswitch_saved" /etc/nsswitch.conf
  rm -f "$nsswitch_saved"
fi

# Units the new packages enabled (Debian enables on install even where systemd is not running).
for pkg in "${need[@]}"; do
  case $pkg in
    openssh-server) units=(ssh.service ssh.socket) ;;
    cron) units=(cron.service) ;;
    *) units=() ;;
  esac
  for unit in "${units[@]}"; do
    if command -v deb-systemd-helper >/dev/null 2>&1; then deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true; fi
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --quiet "$unit" >/dev/null 2>&1 || true; fi
  done
  case $pkg in
    openssh-server) service=ssh ;;
    cron) service=cron ;;
    *) service= ;;
  esac
  if [[ -n $service && -x /etc/init.d/$service ]] && command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
echo "install-deps.sh: installed ${need[*]}; their services are disabled and not running on this machine" >&2
