#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang (address and undefined-behaviour
# sanitizers) and runs each for a while. Not part of the normal build.
#   scripts/fuzz.sh [seconds per target, default 20] [target ...]
# Corpora persist in build-fuzz/corpus/<target>; crashes land in build-fuzz/crashes/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors_header_fuzz tokenizer_json_fuzz tokenizer_encode_fuzz)
fi
out="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
fixtures="${ZT_FIXTURES_DIR:-$root/../shared/fixtures}"
cxx="${FUZZ_CXX:-clang++}"
mkdir -p "$out/obj" "$out/crashes"

flags=(-std=c++20 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -I"$root/include" -I"$root/src" $(pkg-config --cflags libpcre2-8 sentencepiece icu-uc liburing)
       -DZT_FIXTURES_DIR="\"$fixtures\"")
libs=($(pkg-config --libs libpcre2-8 sentencepiece icu-uc liburing) -lpthread)

# The library pieces the targets use: core (its CPU-only build: CUDA sources live in core/cuda/)
# and io.
sources=("$root"/src/core/*.cpp "$root"/src/io/*.cpp)

# An object is rebuilt when its source or any header is newer (a changed class layout would
# otherwise link stale objects against new ones).
newest_header="$(find "$root/include" "$root/src" -name '*.hpp' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2-)"
objects=()
for f in "${sources[@]}"; do
  o="$out/obj/$(basename "${f%.cpp}").o"
  if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
    "$cxx" "${flags[@]}" -c "$f" -o "$o"
  fi
  objects+=("$o")
done

status=0
for t in "${targets[@]}"; do
  echo "== $t (${seconds}s)"
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "$root/tests/fuzz/$t.cpp" "${objects[@]}" "${libs[@]}" -o "$out/$t"
  mkdir -p "$out/corpus/$t"
  seeds=()
  case "$t" in
    safetensors_header_fuzz) seeds=("$fixtures"/hf/tiny-gpt2/model.safetensors) ;;
    tokenizer_json_fuzz) seeds=("$fixtures"/hf/tok-bpe/tokenizer.json) ;;
    tokenizer_encode_fuzz) seeds=("$fixtures"/hf/tok-bpe/cases.json) ;;
  esac
  for s in "${seeds[@]}"; do [ -f "$s" ] && cp -n "$s" "$out/corpus/$t/" || true; done
  # The fixture files are larger than libFuzzer's default input limit.
  if ! "$out/$t" -max_total_time="$seconds" -max_len=1048576 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$out/crashes/$t-" "$out/corpus/$t"; then
    echo "fuzz: $t FAILED; reproducer in $out/crashes/" >&2
    status=1
  fi
done
exit $status
