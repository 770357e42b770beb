#!/usr/bin/env bash
# Single-process CPU training throughput: zt against the PyTorch peer, in the same run on the
# same machine (Debian's python3-torch with OpenBLAS, OMP_NUM_THREADS=2). Writes
# bench/results/cpu_train_single.json.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peer="${ZT_PEERS_DIR:-$root/../shared/peers}/torch_cpu_peer.py"
build="${ZT_BUILD_DIR:-$root/build}"
dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "ok installed" || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch; }
[ -x "$build/bench/bench_cpu_train" ] || bash "$root/scripts/build.sh"

export OMP_NUM_THREADS=2
rounds="${ROUNDS:-3}"
zt_lines=() peer_lines=()
for i in $(seq "$rounds"); do  # interleaved, so that drift hits both alike
  zt_lines+=("$("$build/bench/bench_cpu_train" 21 2)")
  peer_lines+=("$(STEPS=20 /usr/bin/python3 "$peer" single)")
done
python3 - "$root/bench/results/cpu_train_single.json" "${#zt_lines[@]}" "${zt_lines[@]}" "${peer_lines[@]}" <<'PY'
import json, sys, subprocess, datetime, platform, statistics
out, n = sys.argv[1], int(sys.argv[2])
zt = [json.loads(l) for l in sys.argv[3:3 + n]]
peer = [json.loads(l) for l in sys.argv[3 + n:]]
best = lambda runs: max(r["tokens_per_s"] for r in runs)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {"benchmark": "cpu_train_single", "date": datetime.date.today().isoformat(), "commit": commit,
          "machine": f"{cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores",
          "zt_tokens_per_s": best(zt), "peer_tokens_per_s": best(peer), "speedup": best(zt) / best(peer),
          "zt_runs": zt, "peer_runs": peer}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps({k: result[k] for k in ("zt_tokens_per_s", "peer_tokens_per_s", "speedup")}))
PY
