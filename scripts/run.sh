#!/usr/bin/env bash
# The main job: sets up, builds, and runs `zt train` (by default a small GPT on the built-in
# synthetic corpus). Arguments go to `zt train`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/build.sh" > "$root/build.log" 2>&1 || { tail -50 "$root/build.log"; exit 1; }
exec "${ZT_BUILD_DIR:-$root/build}/zt" train "$@"
