#!/bin/bash
# Inside a test sandbox with its OWN network namespace (rpcbind takes port 111): start rpcbind and nfs-ganesha
# (FSAL_VFS) exporting DIR over NFSv3 (mounted by its path), with root squash or without. Returns once the export answers.
#   tools/nfs/start-server.sh DIR root_squash|no_root_squash
# Logs: /run/keymaker-nfs/ganesha.log. Everything dies with the sandbox's pid namespace.
set -euo pipefail
dir=${1:?usage: start-server.sh DIR root_squash|no_root_squash}
case ${2:-} in
  root_squash) squash=Root_Squash ;;
  no_root_squash) squash=No_Root_Squash ;;
  *) echo "start-server.sh: squash must be root_squash or no_root_squash" >&2; exit 2 ;;
esac
state=/run/keymaker-nfs
mkdir -p "$state" /var/lib/nfs/ganesha /run/ganesha /var/run/ganesha
ip link set lo up
rpcbind -w 2>/dev/null || rpcbind
cat >"$state/ganesha.conf" <<CONF
NFS_CORE_PARAM {
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 { Graceless = true; }
EXPORT_DEFAULTS { SecType = sys; }
EXPORT {
  Export_Id = 1;
  Path = $dir;
  Pseudo = /share;
  Protocols = 3;
  Transports = TCP;
  Access_Type = RW;
  Squash = $squash;
  Anonymous_Uid = 65534;
  Anonymous_Gid = 65534;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
CONF
ganesha.nfsd -f "$state/ganesha.conf" -L "$state/ganesha.log" -p "$state/ganesha.pid" -N NIV_WARN 2>>"$state/ganesha.log"
for _ in $(seq 1 100); do
  if rpcinfo -t 127.0.0.1 mountd 3 >/dev/null 2>&1 && rpcinfo -t 127.0.0.1 nfs 3 >/dev/null 2>&1; then exit 0; fi
  sleep 0.1
done
echo "start-server.sh: ganesha did not register with rpcbind within 10 s; its log:" >&2
tail -20 "$state/ganesha.log" >&2 || true
exit 1
