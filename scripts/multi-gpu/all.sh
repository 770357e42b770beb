#!/usr/bin/env bash
# The multi-GPU runs in one call within the device tool's 10 minutes: builds what is out of date,
# then comm.sh (collectives tests and busbw), parity.sh (every stage against stage 0) and
# scaling.sh (tokens/s per GPU on 1..N GPUs against FSDP2, memory against the formulas), with
# one deadline for all (ZT_BUDGET_S, default 570 s): scaling skips, and lists, the runs that would
# not end before it. Prints a short table last; with $OUT set, copies the result JSON, this
# run's output (all.log) and every log (logs.tgz) there.
#
#   scripts/multi-gpu/all.sh [N] [--dry-run]
#
# N: GPUs (default every visible one). --dry-run: the same on CPU ranks (default 2), tiny models.
# ZT_ALL_RUNS (default "comm parity scaling") picks and orders the runs.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
zt_parse_args "$@" || exit 2
[ -n "${OUT:-}" ] && mkdir -p "$OUT" && exec > >(tee "$OUT/all.log") 2>&1
zt_setup all "$zt_dry" || exit 1
n="$(zt_world_size)" || exit 1
[ "$zt_dry" = 1 ] || { nvidia-smi -L; nvidia-smi topo -m 2>/dev/null | head -12; }
zt_build zt_cli zt_test_comm zt_test_comm_collectives || exit 1
export ZT_SKIP_BUILD=1 ZT_RESULTS="$RESULTS"  # one folder for the three results
args=("$n")
[ "$zt_dry" = 1 ] && args+=(--dry-run)

runs_asked=(${ZT_ALL_RUNS:-comm parity scaling})
for script in "${runs_asked[@]}"; do
  case "$script" in comm|parity|scaling) ;; *) echo "ZT_ALL_RUNS: unknown run $script (comm, parity, scaling)" >&2; exit 2 ;; esac
done
if [ "$zt_dry" = 1 ]; then suffix="${n}cpu" comm_name="comm_mpi"; else suffix="${n}x$(zt_gpu_kind)" comm_name="comm_nccl"; fi
status=0
results=()
for script in "${runs_asked[@]}"; do
  zt_log "== $script.sh ${args[*]} ($(zt_seconds_left) s left)"
  bash "$here/$script.sh" "${args[@]}" || { status=1; zt_log "== $script.sh FAILED"; }
  case "$script" in
    comm) results+=("$RESULTS/${comm_name}_$suffix.json") ;;
    *) results+=("$RESULTS/${script}_$suffix.json") ;;
  esac
done
if [ -n "${OUT:-}" ]; then
  for f in "${results[@]}"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
  tar czf "$OUT/logs.tgz" -C "$(dirname "$LOGS")" . 2>/dev/null
fi
python3 "$here/report.py" table "${results[@]}"
zt_log "all: $([ $status = 0 ] && echo passed || echo FAILED) in $((SECONDS)) s"
exit $status
