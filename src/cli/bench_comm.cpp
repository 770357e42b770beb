// `zt bench comm`: collectives from 8 B to 256 MiB over MPI (host buffers) or NCCL (CUDA
// buffers), printed in nccl-tests' layout by rank 0, then one JSON line per op and size
// (also written to --out). Start it with zt launch or mpirun for more than one rank.
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "zt/comm/comm_bench.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/device.hpp"
#include "zt/core/error.hpp"

namespace zt::cli {
namespace {

struct BenchCommArgs {
  std::string backend = "auto";
  std::string ops = "all";
  std::string min_bytes = "8";
  std::string max_bytes = "256M";
  double step_factor = 2;
  std::string dtype = "f32";
  std::string redop = "sum";
  int root = 0;
  int iters = 20;
  int warmup_iters = 5;
  int check = 1;
  bool json_only = false;
  std::string out;
  std::string commit;
};

// ZT_COMMIT when set (a copy of the tree on another machine may carry stale git metadata), else git's.
std::string git_commit() {
  if (const char* given = std::getenv("ZT_COMMIT"); given && *given) return given;
  std::string commit = "unknown";
  if (FILE* p = popen("git rev-parse --short HEAD 2>/dev/null", "r")) {
    char buf[64] = {0};
    if (fgets(buf, sizeof buf, p)) {
      commit = buf;
      while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r')) commit.pop_back();
    }
    pclose(p);
  }
  return commit;
}

DType parse_dtype(const std::string& name) {
  // nccl-tests' names too.
  if (name == "float") return DType::f32;
  if (name == "half") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "int32") return DType::i32;
  if (name == "uint8") return DType::u8;
  return dtype_from_name(name);
}

void run(const BenchCommArgs& a) {
  comm::CommBenchOptions o;
  if (a.ops != "all") {
    o.ops.clear();
    std::istringstream in(a.ops);
    for (std::string op; std::getline(in, op, ',');) o.ops.push_back(op);
  }
  o.min_bytes = comm::parse_byte_size(a.min_bytes);
  o.max_bytes = comm::parse_byte_size(a.max_bytes);
  o.step_factor = a.step_factor;
  o.dtype = parse_dtype(a.dtype);
  o.redop = comm::reduce_op_from_name(a.redop);
  o.root = a.root;
  o.iters = a.iters;
  o.warmup_iters = a.warmup_iters;
  o.check = a.check != 0;

  ZT_CHECK(a.backend == "auto" || a.backend == "mpi" || a.backend == "nccl", "--backend '", a.backend,
           "' is not one of auto, mpi, nccl");
  // auto: NCCL on this rank's GPU when the build and the host have one, MPI on host buffers otherwise.
  const bool use_cuda = a.backend == "nccl" || (a.backend == "auto" && cuda_is_available());
  auto group = comm::init_process_group({.backend = use_cuda ? "nccl" : (a.backend == "mpi" ? "mpi" : "auto"),
                                         .timeout_s = 0});
  if (use_cuda) {
    o.device = Device::cuda(comm::launched_local_rank());
    group->init_cuda(o.device.index);
  }
  const bool printer = group->rank() == 0;
  const comm::BenchContext context = comm::bench_context(*group, o, a.commit.empty() ? git_commit() : a.commit);
  if (printer && !a.json_only) {
    std::printf("# zt bench comm: backend %s, %d ranks, %s, host %s, commit %s\n", context.backend.c_str(),
                context.world_size, context.device.c_str(), context.host.c_str(), context.commit.c_str());
    std::printf("# iters %d, warmup %d, check %d\n", o.iters, o.warmup_iters, int(o.check));
  }
  std::string last_op;
  const auto results = comm::run_comm_bench(*group, o, [&](const comm::CommBenchResult& r) {
    if (!printer || a.json_only) return;
    if (r.op != last_op) {
      std::printf("#\n# %s\n%s", r.op.c_str(), comm::comm_bench_table_header().c_str());
      last_op = r.op;
    }
    std::fputs(comm::comm_bench_table_row(r).c_str(), stdout);
    std::fflush(stdout);
  });
  if (printer) {
    std::ofstream out;
    if (!a.out.empty()) {
      out.open(a.out);
      ZT_CHECK(out.good(), "cannot write ", a.out);
    }
    for (const auto& r : results) {
      const std::string line = comm::comm_bench_json(r, context);
      std::printf("%s\n", line.c_str());
      if (out.is_open()) out << line << "\n";
    }
  }
  group.reset();
  comm::finalize();
}

}  // namespace

void add_bench_comm_command(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("comm", "collectives from 8 B to 256 MiB: time, algbw and busbw as nccl-tests prints");
  auto args = std::make_shared<BenchCommArgs>();
  cmd->add_option("--backend", args->backend, "mpi (host buffers), nccl (CUDA buffers) or auto")->capture_default_str();
  cmd->add_option("--ops", args->ops,
                  "comma-separated: all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all, sendrecv")
      ->capture_default_str();
  cmd->add_option("-b,--minbytes", args->min_bytes, "smallest message (8, 64K, 1M, ...)")->capture_default_str();
  cmd->add_option("-e,--maxbytes", args->max_bytes, "largest message")->capture_default_str();
  cmd->add_option("-f,--stepfactor", args->step_factor, "size multiplier between steps")->capture_default_str();
  cmd->add_option("-d,--datatype", args->dtype, "f32, bf16, f16, i32, u8 (or float, bfloat16, half, int32, uint8)")
      ->capture_default_str();
  cmd->add_option("-o,--op", args->redop, "reduction: sum, avg, max, min")->capture_default_str();
  cmd->add_option("-r,--root", args->root, "root of broadcast and reduce")->capture_default_str();
  cmd->add_option("-n,--iters", args->iters, "timed iterations per size")->capture_default_str();
  cmd->add_option("-w,--warmup_iters", args->warmup_iters, "untimed iterations per size")->capture_default_str();
  cmd->add_option("-c,--check", args->check, "check results (1) or not (0)")->capture_default_str();
  cmd->add_flag("--json", args->json_only, "print only the JSON lines");
  cmd->add_option("--out", args->out, "also write the JSON lines to this file");
  cmd->add_option("--commit", args->commit, "commit to record (default: git rev-parse --short HEAD)");
  cmd->callback([args] { run(*args); });
}

}  // namespace zt::cli
