#!/usr/bin/env bash
# On a machine with transformers, safetensors and tokenizers (the device machine): fine-tunes the
# tiny Hugging Face fixtures with zt, exports them (zt convert --to hf), and checks with the
# Hugging Face libraries that the files read and the logits agree; then runs the tokenizer
# throughput benchmark against Hugging Face tokenizers in the same call.
# Results (JSON lines) go to $OUT or build-interop/.
#
# Environment: ZT_GPU_DEPS (scripts/gpu-deps' folder), PYTHON (default /opt/torch/.venv/bin/python3
# when present), ZT_FIXTURES_DIR.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/cuda/bin"
build="${ZT_BUILD_DIR:-$root/build-gpu}"
out="${OUT:-$root/build-interop}"
mkdir -p "$out"
python="${PYTHON:-python3}"
[ -x /opt/torch/.venv/bin/python3 ] && python="${PYTHON:-/opt/torch/.venv/bin/python3}"
fixtures="${ZT_FIXTURES_DIR:-$root/../shared/fixtures}"
[ -d "$fixtures/hf" ] || fixtures="$root/shared/fixtures"
export ZT_FIXTURES_DIR="$fixtures"
if [ -n "${ZT_GPU_DEPS:-}" ]; then
  deps="${TMPDIR:-/tmp}/zt-gpu-deps"
  rm -rf "$deps" && cp -r "$ZT_GPU_DEPS" "$deps" && find "$deps" -name '*.xz' -exec xz -df {} \;
  multiarch="$deps/usr/lib/x86_64-linux-gnu"
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$multiarch/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$multiarch:$multiarch/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export OMP_WAIT_POLICY=passive

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DZT_TESTS=OFF > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target zt_cli example_model_logits bench_tokenizer_throughput \
  > "$out/build.log" 2>&1 || { grep -E "error|FAILED" "$out/build.log" | head -40; exit 1; }

status=0
work="$(mktemp -d)"
for model in tiny-llama tiny-gpt2; do
  "$build/zt" train --model "$fixtures/hf/$model" --steps 20 --batch-size 4 --seq-len 32 --lr 3e-3 \
    --save "$work/ck-$model" --log-every 20 > "$out/train-$model.log" 2>&1 || { cat "$out/train-$model.log"; status=1; continue; }
  "$build/zt" convert "$work/ck-$model" --to hf "$work/hf-$model" --max-shard-size 200KB >> "$out/train-$model.log" 2>&1 || status=1
  "$build/examples/example_model_logits" "$work/hf-$model" "$work/logits-$model.safetensors" 3 24 7 >> "$out/train-$model.log" 2>&1 || status=1
  "$python" "$root/scripts/check_hf_interop.py" "$work/hf-$model" "$work/logits-$model.safetensors" | tee -a "$out/interop.jsonl" || status=1
done

"$build/bench/bench_tokenizer_throughput" --mb 100 > "$out/tokenizer_zt.jsonl" 2> "$out/tokenizer_zt.log" || status=1
"$python" "$root/bench/tokenizer_peer.py" --mb 100 > "$out/tokenizer_peer.jsonl" 2> "$out/tokenizer_peer.log" || status=1
cat "$out/tokenizer_zt.jsonl" "$out/tokenizer_peer.jsonl"
exit $status
