#!/bin/bash
# authselect for the RHEL-like e2e test (issue 11), built once (Debian/Ubuntu, root). Debian does not package it.
#   - build dependencies from Debian: libpopt-dev libselinux1-dev autoconf automake libtool autopoint gettext
#     pkg-config make gcc (selinux is a hard requirement of its configure; nothing here runs with SELinux on)
#   - authselect itself from its source tarball, configured as a distribution would (--sysconfdir=/etc
#     --localstatedir=/var, prefix /usr/local), `make install DESTDIR=.toolchain/authselect/root` (gitignored): the
#     e2e test copies that tree into a sandbox (its /etc, /var, /usr/local are overlays), never onto this machine.
#     A later run finds .toolchain/authselect/root/usr/local/bin/authselect and returns at once.
# The tarball: $KEYMAKER_AUTHSELECT_SRC, else the copy kept in this folder (authselect-1.7.0-de4b6d3.tar.gz: a
# fresh CI machine reaches Debian's mirror but not GitHub, and a test CI cannot run is not a test). It was made from
# github.com/authselect/authselect at commit de4b6d3 with `git archive --format=tar.gz --prefix=authselect-1.7.0/
# HEAD`; authselect is GPL-3.0-or-later (its COPYING is inside). It is test tooling only: no npm package ships it.
# Never fails the caller's run: on any failure it prints why and exits 0; the e2e test then skips and says why
# (it reads the reason from .toolchain/authselect/UNAVAILABLE).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$repo/.toolchain/authselect
reason_file=$out/UNAVAILABLE
mkdir -p "$out"
fail() { echo "tools/authselect/setup.sh: $*" >&2; printf '%s\n' "$*" >"$reason_file"; exit 0; }
[[ -x $out/root/usr/local/bin/authselect ]] && { rm -f "$reason_file"; exit 0; }
[[ $(uname -s) == Linux ]] || fail "not Linux"
[[ $(id -u) == 0 ]] || fail "not root (apt-get needs root)"

need=()
have() { command -v "$1" >/dev/null 2>&1; }
[[ -e /usr/include/popt.h ]] || need+=(libpopt-dev)
[[ -e /usr/include/selinux/selinux.h ]] || need+=(libselinux1-dev)
have autoconf || need+=(autoconf)
have automake || need+=(automake)
have libtoolize || need+=(libtool)
have autopoint || need+=(autopoint)
have msgfmt || need+=(gettext)
have pkg-config || need+=(pkg-config)
have make || need+=(make)
have gcc || need+=(gcc)
if ((${#need[@]})); then
  have apt-get || fail "no apt-get to install ${need[*]}"
  echo "tools/authselect/setup.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || fail "apt-get install ${need[*]} failed"
fi

# The kept copy, unless the caller names another tarball.
src=${KEYMAKER_AUTHSELECT_SRC:-$repo/tools/authselect/authselect-1.7.0-de4b6d3.tar.gz}
[[ -r $src ]] || src=
[[ -n $src ]] || fail "authselect source not found (tools/authselect/authselect-1.7.0-de4b6d3.tar.gz is missing from this checkout; or set KEYMAKER_AUTHSELECT_SRC to its tarball)"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
tar xzf "$src" -C "$build" || fail "cannot unpack $src"
dir=$(find "$build" -maxdepth 2 -name configure.ac -printf '%h\n' | head -1)
[[ -n $dir ]] || fail "no configure.ac in $src"
log=$out/build.log
rm -rf "$out/root"
# No man pages (no asciidoc here): configure turns them off by itself when a2x is missing.
if ! (cd "$dir" && autoreconf -if && ./configure --prefix=/usr/local --sysconfdir=/etc --localstatedir=/var &&
  make -j2 && make install DESTDIR="$out/root") >"$log" 2>&1; then
  rm -rf "$out/root"
  fail "authselect build failed (log: $log)"
fi
rm -f "$reason_file"
echo "tools/authselect/setup.sh: ready ($out/root/usr/local/bin/authselect)" >&2
