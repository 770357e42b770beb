#!/usr/bin/env bash
# Open MPI as scripts/gpu-deps gathers it and env.sh relocates it (ZT_GPU_DEPS, ZT_MPI=deps), on
# this machine with its own Open MPI hidden, as a GPU image without Open MPI would be: its mpirun,
# plugins and help files come from the unpacked folder; the wrapper compiler gives CMake that
# folder's headers and libraries; the collectives tests pass on 2 ranks under `zt launch`, and
# `zt train --nproc 2` trains through it. Hiding takes a private mount namespace (unshare -m, as
# root): without one the check exits 77, which CTest reports as skipped.
#
#   scripts/multi-gpu/check-relocated-mpi.sh [BUILD_DIR]     (a CPU build with zt_cli and the comm tests)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:-$here/../../build}" && pwd)"
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
  echo "check-relocated-mpi: skipped: hiding the system's Open MPI needs root and unshare -m"
  exit 77
fi
command -v orterun >/dev/null || { echo "check-relocated-mpi: this machine has no Open MPI to gather"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash "$here/../gpu-deps" "$work/gpu-deps" > "$work/gpu-deps.log" 2>&1 || { cat "$work/gpu-deps.log"; exit 1; }
echo "check-relocated-mpi: gathered $(tail -1 "$work/gpu-deps.log")"

unshare -m --propagation private env WORK="$work" BUILD="$build" HERE="$here" bash -c '
  set -uo pipefail
  mkdir -p "$WORK/empty"
  : > "$WORK/empty-file"
  a=/usr/lib/x86_64-linux-gnu
  hidden=(/usr/share/openmpi /etc/openmpi "$a/openmpi" "$a/pmix2" /usr/bin/orterun /usr/bin/orted /usr/bin/opal_wrapper)
  for l in libmpi.so.40 libmpi_cxx.so.40 libopen-pal.so.40 libopen-rte.so.40 libpmix.so.2; do
    [ -e "$a/$l" ] && hidden+=("$(readlink -f "$a/$l")")
  done
  for p in "${hidden[@]}"; do [ -d "$p" ] || mount --bind "$WORK/empty-file" "$p" || exit 1; done  # files first:
  for p in "${hidden[@]}"; do [ -d "$p" ] && { mount --bind "$WORK/empty" "$p" || exit 1; }; done  # some are in these
  source "$HERE/env.sh"
  export TMPDIR="$WORK" ZT_GPU_DEPS="$WORK/gpu-deps" ZT_MPI=deps ZT_BUILD_DIR="$BUILD" ZT_SKIP_BUILD=1
  zt_setup relocated-mpi 1 || exit 1
  status=0
  check() { if "$@"; then echo "ok: $*"; else echo "FAILED: $*"; status=1; fi; }
  check test "$(command -v mpirun)" = "$WORK/zt-gpu-deps/usr/bin/mpirun"
  check test -z "$(ls /usr/share/openmpi)"
  check bash -c "ompi_info --path pkgdatadir | grep -q \"$WORK/zt-gpu-deps/usr/share/openmpi\""
  check bash -c "ompi_info | grep -q \"MCA btl: vader\""
  check bash -c "mpicxx -showme:compile | grep -q \"I$WORK/zt-gpu-deps/usr/lib/x86_64-linux-gnu/openmpi/include\""
  check bash -c "\"$ZT\" launch --num_procs 2 -- \"$ZT_TESTS/zt_test_comm_collectives\" > \"$WORK/collectives.log\" 2>&1" ||
    tail -20 "$WORK/collectives.log"
  grep -a "PASSED" "$WORK/collectives.log" | sed "s/\x1b\[[0-9;]*m//g"
  check bash -c "\"$ZT\" train --nproc 2 --model gpt2-tiny --steps 3 --threads 1 --log-every 3 > \"$WORK/train.log\" 2>&1" ||
    tail -20 "$WORK/train.log"
  grep -a "stage 0 x 2" "$WORK/train.log"
  # A library the ranks loaded came from the folder, not from the hidden system paths.
  check bash -c "LD_DEBUG=libs mpirun -np 1 \"$ZT_TESTS/zt_test_comm_collectives\" --gtest_filter=Collectives.Barrier 2>&1 |
    grep -q \"calling init: $WORK/zt-gpu-deps/usr/lib/x86_64-linux-gnu/libmpi.so.40\""
  exit $status
'
status=$?
echo "check-relocated-mpi: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
