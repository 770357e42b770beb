#!/usr/bin/env bash
# Scaling and memory on 1..N GPUs: `zt train` for GPT-2 350M (gpt2-medium, B=16, T=1024) and
# Llama 1.1B (tinyllama-1.1b, B=4, T=2048) under ZeRO stages 0-3, bf16, AdamW, clip 1.0, at the
# same per-GPU batch on 1, 2, 4 and 8 GPUs (those up to N), and PyTorch FSDP2 (bench/fsdp2_peer.py,
# reshard after forward or not) on the same models and GPUs in the same call. Writes
# bench/results/scaling_<N>x<gpu>.json: tokens/s per GPU (median step), efficiency against the
# same configuration on 1 GPU and against zt's stage 0 on 1 GPU, peak memory of the busiest GPU,
# the engine's model-state bytes per rank beside the ZeRO formula's (DESIGN.md), and whether the
# goals at N GPUs are met (stages 1-2 >= 95%, stage 3 >= 90%, ahead of FSDP2).
#
#   scripts/multi-gpu/scaling.sh [N] [--dry-run]
#
# Runs go in the order stage 0 on 1 GPU, everything on N GPUs, the rest on 1 GPU, then the counts
# between, both models each time, so that a run cut short by the time budget still has the
# comparisons that matter; a run that would not end by the deadline is skipped and listed as such
# (run the rest in another call with ZT_SCALING_COUNTS). --dry-run: gpt2-tiny and llama-tiny on 1 and 2 CPU ranks, f32, no peer.
# Environment: env.sh's, and ZT_SCALING_COUNTS (default "1 2 4 8", those up to N),
# ZT_SCALING_STEPS (default 8: the median of steps 2..8 is timed), ZT_SCALING_MODELS (names from
# the table below), ZT_PEER=0 (no FSDP2), ZT_BUDGET_S (default 570) or ZT_DEADLINE, ZT_SKIP_BUILD=1.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
zt_parse_args "$@" || exit 2
zt_setup scaling "$zt_dry" || exit 1
n_max="$(zt_world_size)" || exit 1
zt_build zt_cli || exit 1

# name batch seq reduce/allgather/prefetch bucket persistence_threshold
declare -A shape=(
  [gpt2-medium]="16 1024 5e7 1e5" [tinyllama-1.1b]="4 2048 5e7 1e5"
  [gpt2-tiny]="4 64 5000 100" [llama-tiny]="4 64 5000 100"
)
if [ "$zt_dry" = 1 ]; then
  device=cpu precision=false vocab_multiple=1 peer=0 out="$RESULTS/scaling_${n_max}cpu.json"
  models=(${ZT_SCALING_MODELS:-gpt2-tiny llama-tiny})
  steps="${ZT_SCALING_STEPS:-4}"
else
  device=cuda precision=true vocab_multiple=64 peer="${ZT_PEER:-1}" out="$RESULTS/scaling_${n_max}x$(zt_gpu_kind).json"
  models=(${ZT_SCALING_MODELS:-gpt2-medium tinyllama-1.1b})
  steps="${ZT_SCALING_STEPS:-8}"
fi
rm -f "$out"  # no stale result from an earlier call
for m in "${models[@]}"; do [ -n "${shape[$m]:-}" ] || { echo "ZT_SCALING_MODELS: unknown model $m" >&2; exit 2; }; done
counts=()
for c in ${ZT_SCALING_COUNTS:-1 2 4 8}; do [ "$c" -le "$n_max" ] && counts+=("$c"); done
# The runs, most telling first (each for every model): stage 0 on 1 GPU (the baseline of every
# efficiency), every stage and the peer on N GPUs, the other stages and the peer on 1 GPU, then
# the counts between.
jobs=()
add_jobs() { local j; for j in "$@"; do [[ " ${jobs[*]} " == *" $j "* ]] || jobs+=("$j"); done; }
has_count() { [[ " ${counts[*]} " == *" $1 "* ]]; }
has_count 1 && add_jobs 1:0
has_count "$n_max" && add_jobs "$n_max":{0,1,2,3,peer}
has_count 1 && add_jobs 1:{1,2,3,peer}
for c in "${counts[@]}"; do add_jobs "$c":{0,1,2,3,peer}; done
[ "$peer" = 1 ] || { kept=(); for j in "${jobs[@]}"; do [[ "$j" == *:peer ]] || kept+=("$j"); done; jobs=("${kept[@]}"); }
runs="$LOGS/runs"
rm -rf "$runs" && mkdir -p "$runs"
zt_log "scaling: ${models[*]} on ${counts[*]} ${device}(s), stages 0-3$([ "$peer" = 1 ] && echo " and FSDP2"), $steps steps; $(zt_seconds_left) s left"

declare -A took  # the last wall time of a kind of run (model and impl), to judge whether the next fits
status=0
fits() {  # key name -> 0 when a run like the last one of `key` ends before the deadline
  local est="${took[$1]:-0}" left
  left="$(zt_seconds_left)"
  if [ "$left" -lt $(( (est * 5 / 4) + 10 )) ]; then
    echo "out of time: $left s left, the last such run took $est s" > "$runs/$2.skipped"
    zt_log "$2: skipped ($left s left, about $est s needed)"
    return 1
  fi
}
record() {  # key name status
  took[$1]="$(cut -d. -f1 "$runs/$2.wall")"
  if [ "$3" = 0 ]; then zt_log "$2: $(grep -E "tokens/s|tokens_per_s" "$runs/$2.log" | tail -1 | cut -c1-160) ($(cat "$runs/$2.wall") s)"
  else zt_log "$2 FAILED:"; tail -15 "$runs/$2.log"; status=1; fi
}

for job in "${jobs[@]}"; do
  n="${job%%:*}" what="${job#*:}"
  threads="$(zt_threads_per_rank "$n")"
  for model in "${models[@]}"; do
    read -r batch seq bucket persist <<< "${shape[$model]}"
    if [ "$what" = peer ]; then
      name="fsdp2_${model}_n${n}"
      fits "fsdp2-$model" "$name" || continue
      zt_run "$runs/$name.log" python3 -m torch.distributed.run --standalone --nproc_per_node "$n" \
        "$zt_root/bench/fsdp2_peer.py" --model "$model" --batch "$batch" --seq "$seq" --steps "$((steps - 1))"
      rc=$?
      grep '^{' "$runs/$name.log" > "$runs/$name.json"
      record "fsdp2-$model" "$name" $rc
      continue
    fi
    stage="$what"
    name="zt_${model}_n${n}_stage${stage}"
    fits "zt-$model" "$name" || continue
    cat > "$runs/$name.ds" <<JSON
{"train_micro_batch_size_per_gpu": $batch, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}},
 "bf16": {"enabled": $precision},
 "zero_optimization": {"stage": $stage, "overlap_comm": true, "contiguous_gradients": true,
                       "reduce_bucket_size": $bucket, "allgather_bucket_size": $bucket,
                       "stage3_prefetch_bucket_size": $bucket, "stage3_param_persistence_threshold": $persist}}
JSON
    zt_run "$runs/$name.log" "$ZT" train --nproc "$n" --model "$model" --device "$device" --seq-len "$seq" \
      --steps "$steps" --threads "$threads" --vocab-multiple "$vocab_multiple" --log-every "$steps" \
      --deepspeed_config "$runs/$name.ds" --loss-curve "$runs/$name.json"
    record "zt-$model" "$name" $?
  done
done
python3 "$here/report.py" scaling "$runs" "$out" || status=1
zt_log "scaling: $([ $status = 0 ] && echo done || echo "done, with failures"); $out"
exit $status
