#!/usr/bin/env bash
# Stage parity on N GPUs: `zt train --nproc N --device cuda` under ZeRO stages 0-3, f32 and bf16,
# for GPT-2 124M (buckets, partitions and stage-3 gathers at real sizes: 5M-element buckets, so
# about 25 of them) and Llama-tiny (GQA, RoPE, SwiGLU, untied embeddings; buckets of 2,000
# elements), 20 AdamW steps from the same seed on the same data. Every stage's per-step loss and
# gradient norm against stage 0's: the largest relative difference per stage is printed, and the
# script fails past 1e-4 (f32) or 2e-2 (bf16), or when a run does not train (report.py says why
# those bounds). Result: bench/results/parity_<N>x<gpu>.json.
#
#   scripts/multi-gpu/parity.sh [N] [--dry-run]
#
# N: GPUs (default every visible one). --dry-run: the same on N CPU ranks (default 2) with
# gpt2-tiny and llama-tiny, 12 steps, into build/multi-gpu-dry-run/parity (what CI-like checks
# run on a machine without GPUs). Takes about 2 minutes on 8 GPUs (16 runs), 1 minute dry.
# Environment: env.sh's, and ZT_PARITY_STEPS, ZT_SKIP_BUILD=1 (all.sh built already).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"
zt_parse_args "$@" || exit 2
zt_setup parity "$zt_dry" || exit 1
n="$(zt_world_size)" || exit 1
# Every run takes cuBLASLt's first algorithm for each product: with the timed choice (the
# default) two processes can pick different kernels and differ at the rounding level, which bf16
# training amplifies; the stages are then compared on the same arithmetic. The attention backward
# stays on zt's kernels for the same reason (cuDNN's adds dQ across blocks in a varying order).
export ZT_GEMM_AUTOTUNE=0 ZT_ATTENTION_KERNELS=flash
zt_build zt_cli || exit 1

# name batch seq lr reduce_bucket prefetch_bucket persistence_threshold
if [ "$zt_dry" = 1 ]; then
  device=cpu steps="${ZT_PARITY_STEPS:-12}" vocab_multiple=1 out="$RESULTS/parity_${n}cpu.json"
  models=("gpt2-tiny 4 32 3e-3 2000 1000 100" "llama-tiny 4 32 3e-3 2000 1000 100")
  threads=1
else
  device=cuda steps="${ZT_PARITY_STEPS:-20}" vocab_multiple=64 out="$RESULTS/parity_${n}x$(zt_gpu_kind).json"
  models=("gpt2 4 256 3e-4 5e6 2e6 1e4" "llama-tiny 8 128 3e-3 2000 1000 100")
  threads="$(zt_threads_per_rank "$n")"
fi
rm -f "$out"  # no stale result from an earlier call
runs="$LOGS/runs"
rm -rf "$runs" && mkdir -p "$runs"
zt_log "parity: stages 0-3, f32 and bf16, on $n ${device} rank(s), $steps steps"

status=0
for m in "${models[@]}"; do
  read -r model batch seq lr bucket prefetch persist <<< "$m"
  for precision in fp32 bf16; do
    for stage in 0 1 2 3; do
      name="zt_${model}_${precision}_stage${stage}"
      cat > "$runs/$name.ds" <<JSON
{"train_micro_batch_size_per_gpu": $batch, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": $lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}},
 "bf16": {"enabled": $([ "$precision" = bf16 ] && echo true || echo false)},
 "zero_optimization": {"stage": $stage, "overlap_comm": true, "reduce_bucket_size": $bucket,
                       "allgather_bucket_size": $bucket, "stage3_prefetch_bucket_size": $prefetch,
                       "stage3_param_persistence_threshold": $persist}}
JSON
      if zt_run "$runs/$name.log" "$ZT" train --nproc "$n" --model "$model" --device "$device" --seq-len "$seq" \
          --steps "$steps" --seed 7 --threads "$threads" --vocab-multiple "$vocab_multiple" --log-every "$steps" \
          --deepspeed_config "$runs/$name.ds" --loss-curve "$runs/$name.json"; then
        zt_log "$name: $(tail -1 "$runs/$name.log") ($(cat "$runs/$name.wall") s)"
      else
        zt_log "$name FAILED:"; tail -15 "$runs/$name.log"; status=1
      fi
    done
  done
done
python3 "$here/report.py" parity "$runs" "$out" || status=1
zt_log "parity: $([ $status = 0 ] && echo passed || echo FAILED); $out"
exit $status
