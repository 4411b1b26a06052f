#!/bin/bash
# The NFS pieces of the EFS e2e tests (issue 15), installed and built once (Debian/Ubuntu, root):
#   - Debian packages: nfs-ganesha + nfs-ganesha-vfs (a userspace NFS server), rpcbind, and fuse-nfs's
#     build dependencies (libnfs-dev libfuse-dev autoconf automake libtool pkg-config make gcc, fuse for
#     fusermount). The kernel here has no NFS client or server, so the tests mount the export through FUSE.
#     Services are neither started nor left enabled (policy-rc.d refuses starts; units disabled after).
#   - fuse-nfs (not packaged by Debian), built from its source tarball into .toolchain/fuse-nfs/ (gitignored),
#     once: a later run finds .toolchain/fuse-nfs/bin/fuse-nfs and returns at once.
# The tarball: $KEYMAKER_FUSE_NFS_SRC, else ../shared/tools/fuse-nfs-src.tar.gz next to the repository (or its main
# checkout, from a git worktree; or the local repository it was cloned from).
# Never fails the caller's run: on any failure it prints why and exits 0; the e2e test then skips and says why
# (it writes the reason to .toolchain/fuse-nfs/UNAVAILABLE).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$repo/.toolchain/fuse-nfs
reason_file=$out/UNAVAILABLE
mkdir -p "$out"
fail() { echo "tools/nfs/setup.sh: $*" >&2; printf '%s\n' "$*" >"$reason_file"; exit 0; }
[[ $(uname -s) == Linux ]] || fail "not Linux"
[[ $(id -u) == 0 ]] || fail "not root (apt-get and the FUSE mount need root)"

need=()
have() { command -v "$1" >/dev/null 2>&1 || [[ -x $1 ]]; }
have /usr/bin/ganesha.nfsd || need+=(nfs-ganesha)
compgen -G '/usr/lib/*/ganesha/libfsalvfs.so*' >/dev/null || compgen -G '/usr/lib/ganesha/libfsalvfs.so*' >/dev/null || need+=(nfs-ganesha-vfs)
have /usr/sbin/rpcbind || have /sbin/rpcbind || need+=(rpcbind)
have fusermount || need+=(fuse)
if [[ ! -x $out/bin/fuse-nfs ]]; then
  [[ -e /usr/include/nfsc/libnfs.h ]] || need+=(libnfs-dev)
  [[ -e /usr/include/fuse/fuse.h || -e /usr/include/fuse.h ]] || need+=(libfuse-dev)
  have autoconf || need+=(autoconf)
  have automake || need+=(automake)
  have libtoolize || need+=(libtool)
  have pkg-config || need+=(pkg-config)
  have make || need+=(make)
  have gcc || need+=(gcc)
fi
if ((${#need[@]})); then
  have apt-get || fail "no apt-get to install ${need[*]}"
  echo "tools/nfs/setup.sh: installing ${need[*]} (services not started, not enabled)" >&2
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  saved_policy=
  if [[ -e $policy ]]; then saved_policy=$(mktemp) && cp -p "$policy" "$saved_policy"; fi
  restore_policy() { if [[ -n $saved_policy ]]; then mv -f "$saved_policy" "$policy"; else rm -f "$policy"; fi; }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# tools/nfs/setup.sh (keymaker tests): no service starts during this install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || fail "apt-get install ${need[*]} failed"
  restore_policy
  trap - EXIT
  for unit in nfs-ganesha.service nfs-ganesha-lock.service rpcbind.service rpcbind.socket; do
    if have deb-systemd-helper; then deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true; fi
    if have systemctl; then systemctl disable --quiet "$unit" >/dev/null 2>&1 || true; fi
  done
  for service in nfs-ganesha rpcbind; do
    if [[ -x /etc/init.d/$service ]] && have update-rc.d; then update-rc.d "$service" disable >/dev/null 2>&1 || true; fi
  done
fi

if [[ ! -x $out/bin/fuse-nfs ]]; then
  # Next to the repository, or next to its main checkout when this is a git worktree.
  # Or next to the checkout this one was cloned from (a fresh clone of a local repository, as CI makes).
  common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  origin=$(git -C "$repo" remote get-url origin 2>/dev/null || true)
  [[ $origin == /* && -d $origin ]] || origin=
  src=
  for candidate in "${KEYMAKER_FUSE_NFS_SRC:-}" "$repo/../shared/tools/fuse-nfs-src.tar.gz" \
    ${common:+"$(dirname "$common")/../shared/tools/fuse-nfs-src.tar.gz"} \
    ${origin:+"$origin/../shared/tools/fuse-nfs-src.tar.gz"}; do
    if [[ -n $candidate && -r $candidate ]]; then src=$candidate && break; fi
  done
  [[ -n $src ]] || fail "fuse-nfs source not found (../shared/tools/fuse-nfs-src.tar.gz next to the repository; or set KEYMAKER_FUSE_NFS_SRC to its tarball)"
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  tar xzf "$src" -C "$build" || fail "cannot unpack $src"
  dir=$(find "$build" -maxdepth 2 -name configure.ac -printf '%h\n' | head -1)
  [[ -n $dir ]] || fail "no configure.ac in $src"
  log=$out/build.log
  if ! (cd "$dir" && sh setup.sh && ./configure --prefix="$out" && make -j2 && mkdir -p "$out/bin" &&
    install -m 755 fuse/fuse-nfs "$out/bin/fuse-nfs") >"$log" 2>&1; then
    fail "fuse-nfs build failed (log: $log)"
  fi
fi
rm -f "$reason_file"
echo "tools/nfs/setup.sh: ready (fuse-nfs: $out/bin/fuse-nfs)" >&2
