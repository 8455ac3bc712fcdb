#!/bin/sh
# Build the example's program with the host's C compiler, reproducibly, for
# Debian 12's glibc (build on Debian 12, or in a Debian 12 container, so the
# binary needs no newer glibc symbols than the image's libc6 has).
# Then pin it: `mkimg lock manifest.yaml` records its sha256.
set -eu
cd "$(dirname "$0")"
mkdir -p build
export SOURCE_DATE_EPOCH=1704067200 LC_ALL=C
${CC:-cc} -O2 -g0 -Wall -Wextra -Werror \
  -ffile-prefix-map="$PWD"=. -fno-ident -Wl,--build-id=sha1 \
  -o build/hello src/hello.c
strip --strip-all build/hello
sha256sum build/hello
