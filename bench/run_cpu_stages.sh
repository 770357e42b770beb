#!/usr/bin/env bash
# The CPU benchmark model (GPT-2 shape: vocab 512, 256 wide, 4 layers, 4 heads, T=256, B=8 per
# rank, f32, AdamW) under ZeRO stages 0-3 on 2 ranks with one thread each, against PyTorch DDP
# and DDP + ZeroRedundancyOptimizer (gloo) in the same run. Writes bench/results/cpu_stages.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peer="${ZT_PEERS_DIR:-$root/../shared/peers}/torch_cpu_peer.py"
build="${ZT_BUILD_DIR:-$root/build}"
dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "ok installed" || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch; }
[ -x "$build/zt" ] || bash "$root/scripts/build.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
steps="${STEPS:-21}"

run_zt() {  # stage -> JSON line
  cat > "$work/ds$1.json" <<JSON
{"train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 1,
 "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "weight_decay": 0.01}},
 "zero_optimization": {"stage": $1, "overlap_comm": true, "reduce_bucket_size": 5e5,
                       "stage3_prefetch_bucket_size": 5e5, "stage3_param_persistence_threshold": 1e4}}
JSON
  "$build/zt" train --model gpt2-cpu-bench --seq-len 256 --steps "$steps" --threads 1 --nproc 2 \
    --deepspeed_config "$work/ds$1.json" --log-every 1000 --loss-curve "$work/zt$1.json" > "$work/zt$1.log" 2>&1 ||
    { cat "$work/zt$1.log"; exit 1; }
  python3 -c "import json,sys; d=json.load(open('$work/zt$1.json')); print(json.dumps({'impl':'zt','stage':$1,'tokens_per_s':d['tokens_per_s'],'memory_per_rank':d['memory_per_rank']}))"
}

run_peer() {  # mode -> JSON line (rank 0 prints it)
  local port=$((29600 + RANDOM % 1000))
  for r in 1 0; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$r WORLD_SIZE=2 STEPS=$((steps - 1)) \
      /usr/bin/python3 "$peer" "$1" > "$work/peer$1_$r.log" 2>&1 &
  done
  wait
  tail -n 1 "$work/peer$1_0.log"
}

lines=()
for round in 1 2; do  # interleaved rounds, so that drift hits every configuration alike
  for s in 0 1 2 3; do lines+=("$(run_zt $s)"); done
  for m in ddp zero1; do lines+=("$(run_peer $m)"); done
done
python3 - "$root/bench/results/cpu_stages.json" "${lines[@]}" <<'PY'
import json, sys, subprocess, datetime
out, runs = sys.argv[1], [json.loads(l) for l in sys.argv[2:]]
best = {}
for r in runs:
    key = f"zt_stage{r['stage']}" if r.get("impl") == "zt" else r["peer"].split("-")[-1]
    if key not in best or r["tokens_per_s"] > best[key]["tokens_per_s"]:
        best[key] = r
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ddp = best["ddp"]["tokens_per_s"]
summary = {k: {"tokens_per_s": round(v["tokens_per_s"], 1), "vs_ddp": round(v["tokens_per_s"] / ddp, 3),
               **({"model_states_bytes_per_rank": v["memory_per_rank"]["model_states"]} if "memory_per_rank" in v else {})}
           for k, v in best.items()}
result = {"benchmark": "cpu_stages", "ranks": 2, "threads_per_rank": 1, "model": "gpt2-cpu-bench B=8/rank T=256 f32",
          "date": datetime.date.today().isoformat(),
          "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
          "machine": cpu, "summary": summary,
          "stage3_vs_stage0": round(best["zt_stage3"]["tokens_per_s"] / best["zt_stage0"]["tokens_per_s"], 3),
          "runs": runs}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(summary))
PY
