#!/usr/bin/env bash
# Installs what mkimg and its test suite need on Debian 12 / Ubuntu, then
# installs the npm dependencies and builds (TypeScript, bundled for start-up, + the C tracer).
# Run as root (or with sudo). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: a C compiler for the tracer. Tests: real OCI tools, a real registry,
# OpenPGP tools for interoperability, dpkg-deb for test repositories, and the
# peers the benchmarks compare against.
PACKAGES=(
  gcc libc6-dev make
  dpkg-dev xz-utils zstd
  skopeo umoci runc podman docker-registry apache2-utils
  gnupg sq sqv
  busybox-static strace mmdebstrap
  python3.11
  ca-certificates curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# docker-registry's package starts a system service on port 5000; tests start
# their own registries on free ports, so the packaged one is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

npm ci --no-audit --no-fund
npm run build
