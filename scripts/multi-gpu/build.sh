#!/usr/bin/env bash
# Builds what the multi-GPU scripts run (zt, the comm tests) with CUDA into build-gpu, or the CPU
# build with --dry-run, and says which mpirun the ranks will use. all.sh and the others build the
# same targets when they are out of date; a call of its own keeps the 10 minutes of the next
# call for the runs (the build stays on a warm machine between calls).
#
#   scripts/multi-gpu/build.sh [--dry-run]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
zt_parse_args "$@" || exit 2
zt_setup build "$zt_dry" || exit 1
[ "$zt_dry" = 1 ] || nvidia-smi -L
zt_build zt_cli zt_test_comm zt_test_comm_collectives
