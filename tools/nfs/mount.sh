#!/bin/bash
# Mount the sandbox's NFS export (start-server.sh) on MOUNTPOINT through fuse-nfs, over NFSv3, as a client host
# would: each process's own uid and gid go to the server (AUTH_SYS), so the server's squash decides root's.
#   tools/nfs/mount.sh FUSE_NFS EXPORT_DIR MOUNTPOINT   (EXPORT_DIR: start-server.sh's DIR; NFSv3 mounts by path)
set -euo pipefail
bin=${1:?usage: mount.sh FUSE_NFS EXPORT_DIR MOUNTPOINT}
export_dir=${2:?usage: mount.sh FUSE_NFS EXPORT_DIR MOUNTPOINT}
where=${3:?usage: mount.sh FUSE_NFS EXPORT_DIR MOUNTPOINT}
mkdir -p "$where"
# -a: allow_other; -o: the caller's own uid/gid in each request; -p 0: permissions are the server's to check.
"$bin" -a -o -p 0 -n "nfs://127.0.0.1${export_dir}?version=3" -m "$where"
for _ in $(seq 1 50); do
  if [[ $(stat -c %d "$where") != $(stat -c %d "$(dirname "$where")") ]]; then exit 0; fi
  sleep 0.1
done
echo "mount.sh: nothing mounted on $where" >&2
exit 1
