# Sourced by the GPU scripts (scripts/gpu-test, bench/run_gpu_*.sh, scripts/multi-gpu/env.sh):
# zt_use_gpu_deps unpacks the folder that scripts/gpu-deps made (ZT_GPU_DEPS, carried to a GPU
# machine whose image lacks the build's Debian libraries) once per machine into
# $TMPDIR/zt-gpu-deps, and points CMake, pkg-config and the loader at it. Without ZT_GPU_DEPS it
# does nothing. Returns non-zero, saying why, when the folder is missing or does not unpack.
zt_use_gpu_deps() {
  zt_deps=""
  [ -n "${ZT_GPU_DEPS:-}" ] || return 0
  [ -d "$ZT_GPU_DEPS" ] || { echo "ZT_GPU_DEPS=$ZT_GPU_DEPS is not a folder (make one with scripts/gpu-deps DIR)" >&2; return 1; }
  zt_deps="${TMPDIR:-/tmp}/zt-gpu-deps"
  if [ ! -e "$zt_deps/.unpacked" ] || [ "$ZT_GPU_DEPS" -nt "$zt_deps/.unpacked" ]; then
    rm -rf "$zt_deps" && cp -r "$ZT_GPU_DEPS" "$zt_deps" && find "$zt_deps" -name '*.xz' -exec xz -df {} \; &&
      touch "$zt_deps/.unpacked" || { echo "ZT_GPU_DEPS: could not unpack $ZT_GPU_DEPS into $zt_deps" >&2; return 1; }
  fi
  local multiarch="$zt_deps/usr/lib/x86_64-linux-gnu"
  export CMAKE_PREFIX_PATH="$zt_deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$multiarch/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$multiarch:$multiarch/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
