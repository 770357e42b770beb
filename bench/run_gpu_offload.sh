#!/usr/bin/env bash
# The offload benchmark on one GPU, in one invocation: trains a Llama-shaped model larger than what
# fits the GPU with its optimizer there (llama-7b: 6.74B parameters, 16 bytes each = 108 GB of
# model states before activations) with ZeRO-Offload (`offload_optimizer {device: cpu}`: f32
# master weights and Adam's moments in host memory, the CPU AdamW), then, in the same call, a
# model that fits without offload (tinyllama-1.1b, the optimizer on the GPU) for the MFU to
# compare with. Writes one JSON: tokens/s, model TFLOP/s and MFU (6N + 12 L C T per token against
# the bf16 dense peak), the step time, GPU peak memory and the host's peak resident memory.
#
#   bench/run_gpu_offload.sh [RESULT.json]     default bench/results/offload_gpu_<gpu>.json
#
# Environment: ZT_GPU_DEPS (scripts/gpu-deps' folder, for an image without the build's
# libraries), ZT_BUILD_DIR (default build-gpu), ZT_OFFLOAD_MODEL (default llama-7b),
# ZT_OFFLOAD_MICRO (micro-batch, default 4), ZT_OFFLOAD_GAS (accumulation, default 4),
# ZT_OFFLOAD_STEPS (default 4: the first is warm-up), PEAK_TFLOPS (default 989.5), ZT_COMMIT.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/cuda/bin"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | grep -oiE 'h100|h200|a100' | tr A-Z a-z)"
result="${1:-$root/bench/results/offload_gpu_${gpu:-unknown}.json}"
build="${ZT_BUILD_DIR:-$root/build-gpu}"
logs="$build/bench-offload"
mkdir -p "$logs"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
source "$root/scripts/gpu-deps-env.sh"
zt_use_gpu_deps || exit 1
nvidia-smi -L | tee "$logs/device.txt"
if [ ! -x "$build/zt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
    > "$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; exit 1; }
fi
cmake --build "$build" -j "$(nproc)" --target zt_cli > "$logs/build.log" 2>&1 || { grep -E "^FAILED|error" "$logs/build.log" | head -20; exit 1; }

model="${ZT_OFFLOAD_MODEL:-llama-7b}" micro="${ZT_OFFLOAD_MICRO:-4}" gas="${ZT_OFFLOAD_GAS:-4}" steps="${ZT_OFFLOAD_STEPS:-4}"
cat > "$logs/ds_offload.json" <<EOF
{"train_micro_batch_size_per_gpu": $micro, "gradient_accumulation_steps": $gas, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "betas": [0.9, 0.95], "weight_decay": 0.1}},
 "bf16": {"enabled": true},
 "zero_optimization": {"stage": 1, "overlap_comm": true,
                       "offload_optimizer": {"device": "cpu", "pin_memory": true, "buffer_count": 4}}}
EOF
status=0
# name model extra-arguments...
runs=("offload $model --deepspeed_config $logs/ds_offload.json --steps $steps"
      "fits tinyllama-1.1b --batch-size 4 --steps 10")
for r in "${runs[@]}"; do
  set -- $r
  name=$1 m=$2; shift 2
  echo "== zt train $name ($m)"
  /usr/bin/time -v "$build/zt" train --model "$m" --device cuda --precision bf16 --seq-len 2048 --vocab-multiple 64 \
    --log-every 1 --loss-curve "$logs/zt_$name.json" "$@" > "$logs/zt_$name.log" 2>&1 || status=1
  grep -E "^(parameters:|ZeRO|step|final)" "$logs/zt_$name.log" | tail -4
  grep -E "Maximum resident" "$logs/zt_$name.log"
done

python3 - "$logs" "$result" <<'EOF'
import json, os, re, sys, time
logs, result = sys.argv[1], sys.argv[2]
peak = float(os.environ.get("PEAK_TFLOPS", "989.5")) * 1e12
shapes = {"llama-7b": (32, 4096, 32000), "llama-13b": (40, 5120, 32000), "tinyllama-1.1b": (22, 2048, 32000)}
runs = []
for name in ("offload", "fits"):
    path = f"{logs}/zt_{name}.json"
    if not os.path.exists(path):
        continue
    j = json.load(open(path))
    log = open(f"{logs}/zt_{name}.log").read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    place = re.search(r"^parameters: .*$", log, re.M)
    L, C, V = shapes[j["model"]]
    T, n, tokens = j["seq_len"], j["parameters"], j["tokens_per_step"]
    # The peer's count: 6N + 12 L C T per token, N without the input embedding.
    flops_per_token = 6 * (n - V * C) + 12 * L * C * T
    tps = tokens / (j["median_step_ms"] / 1e3)
    runs.append({"config": name, "model": j["model"], "params": n, "tokens_per_step": tokens, "seq_len": T,
                 "ms_per_step": j["median_step_ms"], "tokens_per_s": tps, "model_tflops": tps * flops_per_token / 1e12,
                 "mfu": tps * flops_per_token / peak, "gpu_peak_GiB": j["device_peak_bytes"] / 2**30,
                 "host_peak_GiB": int(rss.group(1)) / 2**20 if rss else None,
                 "placement": place.group(0) if place else "", "loss_first": j["loss"][0], "loss_last": j["loss"][-1]})
device = open(f"{logs}/device.txt").read().strip()
out = {"device": device, "date": time.strftime("%Y-%m-%d"), "commit": os.environ.get("ZT_COMMIT", ""),
       "peak_tflops": peak / 1e12, "runs": runs}
os.makedirs(os.path.dirname(result), exist_ok=True)
json.dump(out, open(result, "w"), indent=1)
print(f"{'config':10s} {'model':16s} {'tok/s':>8s} {'TFLOP/s':>8s} {'MFU':>6s} {'s/step':>7s} {'GPU GiB':>8s} {'host GiB':>8s}")
for r in runs:
    print(f"{r['config']:10s} {r['model']:16s} {r['tokens_per_s']:8.0f} {r['model_tflops']:8.1f} {100 * r['mfu']:5.1f}% "
          f"{r['ms_per_step'] / 1e3:7.2f} {r['gpu_peak_GiB']:8.1f} {r['host_peak_GiB'] or 0:8.1f}")
EOF
if [ -n "${OUT:-}" ]; then cp "$result" "$OUT/" 2>/dev/null; fi
exit $status
