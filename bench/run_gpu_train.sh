#!/usr/bin/env bash
# The GPU training benchmark, in one invocation on one machine: builds zt with CUDA, runs the
# engine's GPU tests, trains GPT-2 124M (B=16, T=1024), GPT-2 350M (B=16, T=1024) and Llama 1.1B
# (TinyLlama's shape, B=4, T=2048) with `zt train --device cuda` (bf16, AdamW, clip 1.0, ZeRO
# stage 0), then the PyTorch peer on the same GPU, and writes one JSON with both sides:
# tokens/s (from the median step), MFU against the bf16 dense peak, peak GPU memory.
#
#   bench/run_gpu_train.sh [RESULT.json]     default bench/results/train_gpu_<gpu>.json (h100, h200)
#
# Environment: ZT_GPU_DEPS (scripts/gpu-deps' folder, for an image without the build's
# libraries), ZT_BUILD_DIR (default build-gpu), ZT_TORCH_PEER (the peer script; default
# shared/peers/torch_peer.py, else ../shared/peers/torch_peer.py), ZT_PEERS (the peer's
# configs, default "gpt2 gpt2c llama1b llama1bc"; empty skips it), ZT_COMMIT (recorded),
# PEAK_TFLOPS (default 989.5: H100/H200 SXM bf16 dense), ZT_PROFILE=1 adds a short run of each
# model under ZT_PROFILE_OPS (where the step goes, op by op) after the timed runs. Logs go to
# <build>/bench-train, and with the result into $OUT (logs.tgz) when it is set.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/cuda/bin"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE 'h100|h200|a100' | tr A-Z a-z)"
result="${1:-$root/bench/results/train_gpu_${gpu:-unknown}.json}"
build="${ZT_BUILD_DIR:-$root/build-gpu}"
logs="$build/bench-train"
mkdir -p "$logs"
peer="${ZT_TORCH_PEER:-$root/shared/peers/torch_peer.py}"
[ -f "$peer" ] || peer="$root/../shared/peers/torch_peer.py"
if [ -z "${ZT_FIXTURES_DIR:-}" ]; then
  if [ -d "$root/../shared/fixtures/hf" ]; then export ZT_FIXTURES_DIR="$root/../shared/fixtures"
  else export ZT_FIXTURES_DIR="$root/shared/fixtures"; fi
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

source "$root/scripts/gpu-deps-env.sh"
zt_use_gpu_deps || exit 1

nvidia-smi -L | tee "$logs/device.txt"
start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  > "$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target zt_cli zt_test_engine zt_test_models > "$logs/build.log" 2>&1 || {
  grep -E "^FAILED|error" "$logs/build.log" | head -40; exit 1; }
echo "== built in $(( $(date +%s) - start )) s"

status=0
for t in "zt_test_engine --gtest_filter=*Cuda*" "zt_test_models --gtest_filter=*Cuda*"; do
  set -- $t
  echo "== $*"
  "$build/tests/$1" "$2" > "$logs/$1.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |on cuda|Failure|error" "$logs/$1.log" | head -30
done

# name model batch seq steps vocab-multiple. Enough steps that the median is one at the clock the
# GPU sustains under its power limit (an H200 falls from 1980 MHz to ~1500 within the first ~0.3 s
# of training), as the peer's are after its 5 warm-up steps.
runs=(
  "gpt2-124M gpt2 16 1024 30 64"
  "gpt2-124M-v50257 gpt2 16 1024 12 1"
  "gpt2-350M gpt2-medium 16 1024 16 64"
  "llama-1.1B tinyllama-1.1b 4 2048 20 64"
)
for r in "${runs[@]}"; do
  set -- $r
  echo "== zt train $1"
  "$build/zt" train --model "$2" --device cuda --precision bf16 --batch-size "$3" --seq-len "$4" --steps "$5" \
    --vocab-multiple "$6" --lr 3e-4 --warmup 2 --weight-decay 0.1 --grad-clip 1.0 --log-every 1 \
    --loss-curve "$logs/zt_$1.json" > "$logs/zt_$1.log" 2>&1 || status=1
  tail -3 "$logs/zt_$1.log"
done

if [ "${ZT_PROFILE:-0}" = 1 ]; then
  for r in "${runs[@]}"; do
    set -- $r
    [[ $1 == *v50257 ]] && continue
    echo "== op profile $1"
    ZT_PROFILE_OPS=1 "$build/zt" train --model "$2" --device cuda --precision bf16 --batch-size "$3" --seq-len "$4" \
      --steps 4 --vocab-multiple "$6" --lr 3e-4 --warmup 2 --grad-clip 1.0 --log-every 100 > "$logs/profile_$1.log" 2>&1
    sed -n '/op profile/,/timed steps/p' "$logs/profile_$1.log" | head -24
  done
fi

peers="${ZT_PEERS-gpt2 gpt2c llama1b llama1bc}"
if [ -n "$peers" ] && [ -f "$peer" ]; then
  echo "== torch peer: $peers"
  PYTHONUNBUFFERED=1 python3 "$peer" $peers > "$logs/peer.jsonl" 2> "$logs/peer.err" || status=1
  cat "$logs/peer.jsonl"; grep -iE "error|Traceback" "$logs/peer.err" | head -5
fi

python3 - "$logs" "$result" <<'EOF'
import glob, json, os, subprocess, sys, time
logs, result = sys.argv[1], sys.argv[2]
peak = float(os.environ.get("PEAK_TFLOPS", "989.5")) * 1e12
shape = {"gpt2": (12, 768, 1024), "gpt2-medium": (24, 1024, 1024), "tinyllama-1.1b": (22, 2048, 2048)}
ours = []
for f in sorted(glob.glob(f"{logs}/zt_*.json")):
    j = json.load(open(f))
    L, C, P = shape[j["model"]]
    T, B, n = j["seq_len"], j["batch_size"], j["parameters"]
    # The peer's FLOP count: 6N + 12 L C T, N without the position (GPT-2) or input (Llama) embedding.
    n_counted = n - (P * C if j["model"].startswith("gpt2") else 32000 * C)
    tps = B * T / (j["median_step_ms"] / 1e3)
    ours.append({"config": os.path.basename(f)[3:-5], "model": j["model"], "params": n, "B": B, "T": T,
                 "vocab_multiple": j["vocab_multiple"], "ms_per_step": j["median_step_ms"], "tokens_per_s": tps,
                 "mfu": tps * (6 * n_counted + 12 * L * C * T) / peak,
                 "peak_mem_GiB": j["device_peak_bytes"] / 2**30, "loss_first": j["loss"][0], "loss_last": j["loss"][-1],
                 "precision": j["precision"], "stage": j["stage"]})
peers, ceilings = [], {}
if os.path.exists(f"{logs}/peer.jsonl"):
    for line in open(f"{logs}/peer.jsonl"):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        (ceilings.update(d) if "ceiling_bf16_tflops" in d else peers.append(d))
device = open(f"{logs}/device.txt").read().strip()
out = {"device": device, "date": time.strftime("%Y-%m-%d"), "commit": os.environ.get("ZT_COMMIT", ""),
       "peak_tflops": peak / 1e12, "ceilings": ceilings, "zt": ours, "torch_peer": peers}
os.makedirs(os.path.dirname(result), exist_ok=True)
json.dump(out, open(result, "w"), indent=1)
print(f"{'config':28s} {'tok/s':>10s} {'MFU':>6s} {'ms':>8s} {'GiB':>6s}")
for r in ours + peers:
    print(f"{r['config']:28s} {r['tokens_per_s']:10.0f} {100 * r['mfu']:5.1f}% {r['ms_per_step']:8.1f} {r['peak_mem_GiB']:6.1f}")
EOF
if [ -n "${OUT:-}" ]; then
  [ "$(dirname "$result")" -ef "$OUT" ] || cp "$result" "$OUT/"  # unless it was written there
  tar czf "$OUT/logs.tgz" -C "$logs" .
fi
exit $status
