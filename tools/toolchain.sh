# shellcheck shell=bash
# Sourced by every project script (tools/test.sh, tools/demo.sh, bench/run.sh, .ci/run): puts the
# project's Node.js and npm first on PATH. Node >= 22 is the floor; a machine whose `node` is older
# (these machines ship 20) gets Node $KEYMAKER_NODE_VERSION from the npm registry (package
# node-<os>-<arch>, integrity-checked by npm) in .toolchain/ (git-ignored). npm is the version that
# package.json's "packageManager" pins, fetched the same way when the machine's differs.
# Prints one line saying what it chose. Needs a working `npm` (any version) to fetch; nothing else.

KEYMAKER_NODE_VERSION=22.23.5

_toolchain_main() {
  local repo tc os arch have_node npm_pinned have_npm dir tgz
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  tc="$repo/.toolchain"
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "toolchain: unsupported OS $(uname -s)" >&2; return 2 ;; esac
  case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) echo "toolchain: unsupported CPU $(uname -m)" >&2; return 2 ;; esac

  _fetch() { # _fetch PACKAGE@VERSION DEST: unpack a registry tarball into DEST (atomically)
    local spec=$1 dest=$2 dl tmp
    command -v npm >/dev/null 2>&1 || { echo "toolchain: need npm (any version) to fetch $spec; install Node.js and npm first" >&2; return 2; }
    # npm pack runs outside the repo: package.json's devEngines would refuse the machine's old Node.
    dl=$(mktemp -d) tmp=$(mktemp -d "$tc/.fetch.XXXXXX")
    if ! (cd "$dl" && npm pack --silent --no-audit --no-fund "$spec" >/dev/null 2>"$dl/err"); then
      echo "toolchain: could not fetch $spec from the npm registry: $(tail -n 1 "$dl/err")" >&2
      rm -rf "$dl" "$tmp"; return 2
    fi
    tgz=$(ls "$dl"/*.tgz)
    tar -xzf "$tgz" -C "$tmp" --strip-components=1 && rm -rf "$dl"
    # mktemp made it 0700; the hooks sshd runs as an unprivileged user must reach this Node.
    chmod 755 "$tmp" && rm -rf "$dest" && mv "$tmp" "$dest"
  }

  mkdir -p "$tc/bin"
  # Decide from the machine's own node and npm: drop .toolchain/bin from PATH first, so that sourcing
  # this twice (a script calling another) sees the same machine and keeps the same choice.
  PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$tc/bin" | paste -sd: -)
  export PATH
  hash -r
  have_node=$(node -p 'process.versions.node' 2>/dev/null || echo none)
  if [[ $have_node == none || ${have_node%%.*} -lt 22 ]]; then
    dir="$tc/node-$KEYMAKER_NODE_VERSION-$os-$arch"
    if [[ ! -x $dir/bin/node ]]; then
      echo "toolchain: machine has Node $have_node (< 22); fetching Node $KEYMAKER_NODE_VERSION from the npm registry" >&2
      _fetch "node-$os-$arch@$KEYMAKER_NODE_VERSION" "$dir" || return 2
    fi
    ln -sfn "$dir/bin/node" "$tc/bin/node"
    export PATH="$tc/bin:$PATH"
    echo "toolchain: Node $KEYMAKER_NODE_VERSION from .toolchain/ (the machine's is $have_node)" >&2
  else
    rm -f "$tc/bin/node"
  fi

  npm_pinned=$(node -p 'require(process.argv[1]).packageManager.replace(/^npm@/, "")' "$repo/package.json")
  have_npm=$(npm --version 2>/dev/null || echo none)
  if [[ $have_npm != "$npm_pinned" ]]; then
    dir="$tc/npm-$npm_pinned"
    [[ -f $dir/bin/npm-cli.js ]] || _fetch "npm@$npm_pinned" "$dir" || return 2
    printf '#!/bin/sh\nexec node "%s/bin/npm-cli.js" "$@"\n' "$dir" >"$tc/bin/npm"
    printf '#!/bin/sh\nexec node "%s/bin/npx-cli.js" "$@"\n' "$dir" >"$tc/bin/npx"
    chmod 755 "$tc/bin/npm" "$tc/bin/npx"
    case ":$PATH:" in *":$tc/bin:"*) ;; *) export PATH="$tc/bin:$PATH" ;; esac
    echo "toolchain: npm $npm_pinned from .toolchain/ (package.json pins it; the machine's is $have_npm)" >&2
  else
    rm -f "$tc/bin/npm" "$tc/bin/npx"
  fi
  hash -r
}

_toolchain_main || exit $?
unset -f _toolchain_main _fetch
