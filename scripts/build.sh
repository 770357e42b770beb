#!/usr/bin/env bash
# Configures and builds ZeroTrain into build/ (CUDA on when nvcc is found). Installs the Debian
# packages first. Extra arguments go to cmake (e.g. -DZT_CUDA=OFF).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
export PATH="$PATH:/usr/local/cuda/bin"
build="${ZT_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > "$build.configure.log" 2>&1 || {
  cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
