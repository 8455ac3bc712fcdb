#!/usr/bin/env bash
# Runs every benchmark in turn (each prints its own table). Needs `npm run build`
# and, for build.mjs, the host's Debian mirror. Takes about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in pack trace verify push build run sizes platforms loop; do
  echo "=== bench/$b.mjs"
  node "bench/$b.mjs" "$@"
done
