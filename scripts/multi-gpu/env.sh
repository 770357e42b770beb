# Sourced by the multi-GPU scripts: the environment of a run on one host with one or more GPUs,
# or of a dry run on CPU ranks (--dry-run). Defines zt_setup, zt_build, zt_gpu_count, zt_gpu_kind
# and zt_log; after zt_setup: ZT (the zt binary), ZT_TESTS (the test programs' folder), RESULTS
# (where result JSON goes), LOGS (logs), MPI_FROM (whose mpirun runs the ranks).
#
# Environment:
#   ZT_GPU_DEPS   a folder made by scripts/gpu-deps on a Debian machine: the build's libraries and
#                 Open MPI, for an image that lacks them (it travels, carried, with the command)
#   ZT_MPI        auto (default): the image's mpirun when there is one (and it is Open MPI 4, or
#                 ZT_GPU_DEPS has none), else ZT_GPU_DEPS' Open MPI; image or deps to choose
#   ZT_BUILD_DIR  default build-gpu (a CUDA build), or build (the CPU build) in a dry run
#   ZT_RESULTS    where results go: default bench/results, or $LOGS in a dry run
#   ZT_CUDA_ARCH  default 90
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0 and the like) whatever the caller set: a program
# that uses it can put a host's GPUs, which others share, out of service.

zt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# Open MPI refuses root without these (the GPU machines run commands as root), and binds each of
# two ranks to a single core by default: a rank that drives a GPU wants the cores its host work
# (initialization, data) can use.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_hwloc_base_binding_policy="${OMPI_MCA_hwloc_base_binding_policy:-none}"
# A rank that fails leaves the others waiting in a collective until this timeout, and zt launch
# waits for them as long again plus a minute: 600 s (the default) would outlast a call.
export ZT_COMM_TIMEOUT_S="${ZT_COMM_TIMEOUT_S:-120}"
# NCCL says why it failed only when asked.
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"

zt_log() { echo "[$(date +%H:%M:%S)] $*"; }

# The GPUs this machine shows (0 without nvidia-smi or a driver).
zt_gpu_count() { nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true; }

# "h200" for "NVIDIA H200": the result files' names.
zt_gpu_kind() {
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/ .*//'
}

# The dependencies gathered by scripts/gpu-deps: zt_use_gpu_deps.
source "$zt_root/scripts/gpu-deps-env.sh"

# Whose mpirun: the image's, or the relocated Open MPI of ZT_GPU_DEPS (OPAL_PREFIX and the other
# install-directory variables point it, its plugins, help files and wrapper compilers at the
# unpacked folder; PMIX_INSTALL_PREFIX does the same for PMIx). zt launch speaks Open MPI 4's
# mpirun (ORTE's options), so auto takes the image's only when it is that, or when there is no
# other.
zt_use_mpi() {
  local want="${ZT_MPI:-auto}"
  case "$want" in auto|image|deps) ;; *) echo "ZT_MPI=$want: expected auto, image or deps" >&2; return 1 ;; esac
  local image=0
  command -v mpirun >/dev/null 2>&1 && mpirun --version >/dev/null 2>&1 && image=1
  if [ "$want" = auto ] && [ $image = 1 ] && ! mpirun --version 2>&1 | grep -q "Open MPI) 4\." &&
     [ -n "$zt_deps" ] && [ -x "$zt_deps/usr/bin/orterun" ]; then
    zt_log "the image's mpirun is not Open MPI 4 ($(mpirun --version 2>&1 | head -1)): ZT_GPU_DEPS' instead"
    image=0
  fi
  if [ "$want" != deps ] && [ $image = 1 ]; then
    MPI_FROM="image: $(command -v mpirun) ($(mpirun --version 2>&1 | head -1))"
    # The gathered Open MPI and the libraries only it needs must not stand in for the image's own
    # (unpacked afresh next time, in case a later call wants them).
    [ -n "$zt_deps" ] && rm -f "$zt_deps/.unpacked" \
      "$zt_deps"/usr/lib/x86_64-linux-gnu/{libmpi,libopen-,libmca_common_,libpmix,libhwloc,libevent,libmunge,libudev}*
    return 0
  fi
  [ "$want" = image ] && { echo "ZT_MPI=image, but this machine has no working mpirun" >&2; return 1; }
  if [ -z "$zt_deps" ] || [ ! -x "$zt_deps/usr/bin/orterun" ]; then
    echo "no mpirun on this machine: make a folder with scripts/gpu-deps DIR on a Debian machine with Open MPI," \
      "carry it, and set ZT_GPU_DEPS=DIR" >&2
    return 1
  fi
  local usr="$zt_deps/usr" multiarch="$zt_deps/usr/lib/x86_64-linux-gnu"
  export OPAL_PREFIX="$usr" OPAL_EXEC_PREFIX="$usr" OPAL_BINDIR="$usr/bin" OPAL_SBINDIR="$usr/sbin"
  export OPAL_LIBEXECDIR="$usr/libexec" OPAL_DATAROOTDIR="$usr/share" OPAL_DATADIR="$usr/share"
  export OPAL_SYSCONFDIR="$zt_deps/etc/openmpi" OPAL_LIBDIR="$multiarch/openmpi/lib"
  export OPAL_INCLUDEDIR="$multiarch/openmpi/include" OPAL_PKGDATADIR="$usr/share/openmpi"
  export OPAL_PKGLIBDIR="$multiarch/openmpi/lib/openmpi3" OPAL_PKGINCLUDEDIR="$multiarch/openmpi/include/openmpi"
  export PMIX_INSTALL_PREFIX="$multiarch/pmix2"
  export PATH="$usr/bin:$PATH" LD_LIBRARY_PATH="$multiarch/openmpi/lib:$LD_LIBRARY_PATH"
  MPI_FROM="ZT_GPU_DEPS: $usr/bin/mpirun ($(mpirun --version 2>&1 | head -1))"
}

# zt_setup NAME [--dry-run]: the environment, the folders, whose MPI.
zt_setup() {
  zt_name="$1"
  zt_dry_run="${2:-0}"
  export PATH="$PATH:/usr/local/cuda/bin"
  if [ "$zt_dry_run" = 1 ]; then
    zt_build_dir="${ZT_BUILD_DIR:-$zt_root/build}"
    LOGS="$zt_build_dir/multi-gpu-dry-run/$zt_name"
    RESULTS="${ZT_RESULTS:-$LOGS}"
  else
    zt_build_dir="${ZT_BUILD_DIR:-$zt_root/build-gpu}"
    LOGS="$zt_build_dir/multi-gpu/$zt_name"
    RESULTS="${ZT_RESULTS:-$zt_root/bench/results}"
  fi
  mkdir -p "$LOGS" "$RESULTS"
  zt_deadline_init
  ZT="$zt_build_dir/zt"
  ZT_TESTS="$zt_build_dir/tests"
  zt_use_gpu_deps || return 1
  zt_use_mpi || return 1
  zt_log "$zt_name: mpirun from $MPI_FROM"
}

# zt_build TARGETS...: the CUDA build (or, in a dry run, the CPU build), only the targets named;
# with ZT_SKIP_BUILD=1 (all.sh built them already, or CTest did) only a check that zt is there.
zt_build() {
  if [ "${ZT_SKIP_BUILD:-0}" = 1 ]; then
    [ -x "$ZT" ] || { echo "ZT_SKIP_BUILD=1, but $ZT is not built" >&2; return 1; }
    return 0
  fi
  local cuda=ON extra=()
  [ "$zt_dry_run" = 1 ] && cuda=OFF
  [ "$cuda" = ON ] && extra+=(-DCMAKE_CUDA_ARCHITECTURES="${ZT_CUDA_ARCH:-90a}")
  # A relocated Open MPI: FindMPI asks its wrapper compiler, which reads OPAL_* for its paths.
  [ -n "${OPAL_PREFIX:-}" ] && extra+=(-DMPI_CXX_COMPILER="$OPAL_PREFIX/bin/mpicxx" -DMPIEXEC_EXECUTABLE="$OPAL_PREFIX/bin/mpirun")
  command -v ccache >/dev/null 2>&1 && extra+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  local start=$SECONDS
  if [ ! -f "$zt_build_dir/CMakeCache.txt" ]; then
    # A configure that fails leaves no cache behind, so that the next call (ZT_MPI=deps, say)
    # starts afresh.
    cmake -S "$zt_root" -B "$zt_build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZT_CUDA=$cuda -DZT_BENCH=OFF \
      "${extra[@]}" > "$LOGS/configure.log" 2>&1 || {
      tail -30 "$LOGS/configure.log"; rm -f "$zt_build_dir/CMakeCache.txt"; return 1; }
  fi
  local jobs
  jobs="$(nproc)"
  [ "$zt_dry_run" = 1 ] && jobs=2
  cmake --build "$zt_build_dir" -j "$jobs" --target "$@" > "$LOGS/build.log" 2>&1 || {
    grep -E "^FAILED|error" "$LOGS/build.log" | head -40; return 1; }
  zt_log "built $* in $((SECONDS - start)) s"
}

# zt_run LOG CMD...: runs CMD with its output in LOG and its wall time, in seconds, in LOG's
# .wall file beside it, ended (with its ranks: timeout signals its process group) at the
# deadline; returns CMD's status, 124 past the deadline.
zt_run() {
  local log="$1"
  shift
  local left
  left="$(zt_seconds_left)"
  if [ "$left" -le 5 ]; then
    echo "not run: the deadline (ZT_BUDGET_S / ZT_DEADLINE) has passed" > "$log"
    echo 0.0 > "${log%.log}.wall"
    return 124
  fi
  local t0="$EPOCHREALTIME"
  timeout --kill-after=15 "$left" "$@" > "$log" 2>&1
  local rc=$?
  [ $rc = 124 ] && echo "ended at the deadline (ZT_BUDGET_S / ZT_DEADLINE)" >> "$log"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", b - a }' > "${log%.log}.wall"
  return $rc
}

# The wall-clock budget of a script (or of all.sh around it), so that a call of the device tool
# ends inside its 10 minutes: ZT_DEADLINE (epoch seconds) when set, else now + ZT_BUDGET_S
# (default 570 s).
zt_deadline_init() { export ZT_DEADLINE="${ZT_DEADLINE:-$(($(date +%s) + ${ZT_BUDGET_S:-570}))}"; }
zt_seconds_left() { echo $((ZT_DEADLINE - $(date +%s))); }

# Threads per rank: the host's cores shared by the ranks.
zt_threads_per_rank() { local t=$(($(nproc) / $1)); echo $((t > 0 ? t : 1)); }

# The arguments of every script: [N] [--dry-run]. Sets zt_n (empty when not given) and zt_dry.
zt_parse_args() {
  zt_n="" zt_dry=0
  for a in "$@"; do
    case "$a" in
      --dry-run) zt_dry=1 ;;
      [1-9]|[1-9][0-9]) zt_n="$a" ;;
      *) echo "usage: $0 [N] [--dry-run]   (N: GPUs, or CPU ranks in a dry run)" >&2; return 2 ;;
    esac
  done
}

# zt_world_size: N as given, else every GPU (2 CPU ranks in a dry run); refuses more GPUs than
# the machine has.
zt_world_size() {
  if [ "$zt_dry" = 1 ]; then echo "${zt_n:-2}"; return 0; fi
  local gpus
  gpus="$(zt_gpu_count)"
  [ "$gpus" -gt 0 ] || { echo "no GPU visible (nvidia-smi -L): use --dry-run for CPU ranks" >&2; return 1; }
  local n="${zt_n:-$gpus}"
  [ "$n" -le "$gpus" ] || { echo "$n GPUs asked for, $gpus visible" >&2; return 1; }
  echo "$n"
}
