#!/usr/bin/env bash
# The whole test suite: sets up, builds, and runs every test through CTest. Tests that need a
# GPU report themselves skipped on machines without one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/build.sh" > "$root/build.log" 2>&1 || { tail -80 "$root/build.log"; exit 1; }
# Ranks and threads share few cores: waiting threads must sleep, not spin.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
cd "${ZT_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
