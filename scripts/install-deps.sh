#!/usr/bin/env bash
# Installs the Debian 12 packages that ZeroTrain builds and tests against.
# Safe to run again: apt-get skips what is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-openmp-dev            # BLAS for the CPU reference kernels (OpenMP threading)
  openmpi-bin libopenmpi-dev        # launcher, bootstrap and the CPU collective backend
  nlohmann-json3-dev libcli11-dev   # config/JSON and the command line
  libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev libpcre2-dev libicu-dev # tokenizers (ICU: Unicode normalization)
  liburing-dev                      # NVMe offload I/O
  python3
  clang libclang-rt-14-dev          # libFuzzer and sanitizers for scripts/fuzz.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
