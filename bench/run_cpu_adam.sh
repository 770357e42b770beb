#!/usr/bin/env bash
# CPU AdamW throughput: zt's vectorized step against torch.optim.AdamW (the peer, foreach and
# single-tensor) on 50M f32 parameters with 2 threads, in the same run on the same machine.
# Writes bench/results/cpu_adam.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peer="${ZT_PEERS_DIR:-$root/../shared/peers}/torch_adam_peer.py"
build="${ZT_BUILD_DIR:-$root/build}"
n="${PARAMS:-50000000}"
[ -x "$build/bench/bench_cpu_adam" ] || ninja -C "$build" bench_cpu_adam

export OMP_NUM_THREADS=2
rounds="${ROUNDS:-2}"
zt_lines=() peer_lines=()
for i in $(seq "$rounds"); do  # interleaved, so that drift hits both alike
  while IFS= read -r l; do zt_lines+=("$l"); done < <("$build/bench/bench_cpu_adam" "$n" 5)
  while IFS= read -r l; do peer_lines+=("$l"); done < <(/usr/bin/python3 "$peer" "$n")
done
python3 - "$root/bench/results/cpu_adam.json" "${#zt_lines[@]}" "${zt_lines[@]}" "${peer_lines[@]}" <<'PY'
import json, sys, subprocess, datetime, platform
out, n = sys.argv[1], int(sys.argv[2])
zt = [json.loads(l) for l in sys.argv[3:3 + n]]
peer = [json.loads(l) for l in sys.argv[3 + n:]]
def best(runs, key, name):
    return max(r["params_per_s"] for r in runs if r[key] == name)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
peers = sorted({r["peer"] for r in peer})
foreach = next(p for p in peers if p.endswith("foreach=True"))
result = {"benchmark": "cpu_adam", "date": datetime.date.today().isoformat(), "commit": commit,
          "machine": f"{cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
          "params": zt[0]["params"], "threads": zt[0]["threads"], "isa": zt[0]["isa"],
          "params_per_s": {**{k: best(zt, "impl", k) for k in sorted({r["impl"] for r in zt})},
                           **{k: best(peer, "peer", k) for k in peers}},
          "speedup_vs_torch_foreach": best(zt, "impl", "zt-fast") / best(peer, "peer", foreach),
          "zt_runs": zt, "peer_runs": peer}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps({k: result[k] for k in ("params_per_s", "speedup_vs_torch_foreach")}))
PY
