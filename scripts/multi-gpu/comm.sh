#!/usr/bin/env bash
# Collectives on N GPUs: the NCCL backend's world-size-1 tests (CommNccl.*), every collectives
# test on CUDA tensors through NCCL with one rank per GPU (zt_test_comm_collectives under zt
# launch, ZT_TEST_COMM_DEVICE=cuda), then `zt bench comm --backend nccl` for all_reduce,
# reduce_scatter and all_gather from 8 B to 1 GiB, each size checked for wrong elements. Prints
# busbw at 1 MiB, 64 MiB and 1 GiB per op (NCCL's own all-reduce reaches about 475 GB/s busbw on
# 8 H200s). Result: bench/results/comm_nccl_<N>x<gpu>.json (JSON lines, nccl-tests' fields).
#
#   scripts/multi-gpu/comm.sh [N] [--dry-run]
#
# N: GPUs (default every visible one). --dry-run: the collectives tests on N CPU ranks (default 2)
# over MPI and the MPI benchmark to 1 MiB, into build/multi-gpu-dry-run/comm. About a minute on
# 8 GPUs (the checked 1 GiB sizes dominate).
# Environment: env.sh's, and ZT_COMM_MAX_BYTES (default 1G), ZT_SKIP_BUILD=1 (all.sh built already).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
zt_parse_args "$@" || exit 2
zt_setup comm "$zt_dry" || exit 1
n="$(zt_world_size)" || exit 1
zt_build zt_cli zt_test_comm zt_test_comm_collectives || exit 1

status=0
step() {  # name command...: runs it, prints the test summary lines or the tail of its log
  local name="$1"
  shift
  if zt_run "$LOGS/$name.log" "$@"; then
    zt_log "$name: passed ($(cat "$LOGS/$name.wall") s)"
  else
    zt_log "$name FAILED ($(cat "$LOGS/$name.wall") s):"; status=1
  fi
  sed 's/\x1b\[[0-9;]*m//g' "$LOGS/$name.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[rank [0-9]+\] FAILED|tests? ran" | head -20
  [ $status = 0 ] || tail -5 "$LOGS/$name.log"
}

if [ "$zt_dry" = 1 ]; then out="$RESULTS/comm_mpi_${n}cpu.json"; else out="$RESULTS/comm_nccl_${n}x$(zt_gpu_kind).json"; fi
rm -f "$out"  # no stale result from an earlier call
if [ "$zt_dry" = 1 ]; then
  step collectives_mpi "$ZT" launch --fail_fast --num_procs "$n" -- "$ZT_TESTS/zt_test_comm_collectives"
  step bench_comm "$ZT" launch --fail_fast --num_procs "$n" -- "$ZT" bench comm --backend mpi \
    --ops all_reduce,reduce_scatter,all_gather -b 8 -e "${ZT_COMM_MAX_BYTES:-1M}" -n 5 -w 2 --json --out "$out"
else
  nvidia-smi topo -m > "$LOGS/topology.txt" 2>&1 && zt_log "topology:" && cat "$LOGS/topology.txt"
  df -h /dev/shm | tail -1  # NCCL and Open MPI put their shared-memory segments there
  step nccl_world1 "$ZT_TESTS/zt_test_comm" --gtest_filter='CommNccl*'
  ZT_TEST_COMM_DEVICE=cuda step collectives_nccl "$ZT" launch --fail_fast --num_gpus "$n" -- "$ZT_TESTS/zt_test_comm_collectives"
  step bench_comm "$ZT" launch --fail_fast --num_gpus "$n" -- "$ZT" bench comm --backend nccl \
    --ops all_reduce,reduce_scatter,all_gather -b 8 -e "${ZT_COMM_MAX_BYTES:-1G}" --out "$out"
  grep -E "^ +[0-9]+ " "$LOGS/bench_comm.log" | tail -3
fi
if [ -s "$out" ]; then python3 "$here/report.py" comm "$out" || status=1; else status=1; fi
zt_log "comm: $([ $status = 0 ] && echo passed || echo FAILED); $out"
exit $status
