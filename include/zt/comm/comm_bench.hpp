// zt bench comm: nccl-tests' measurements (all_reduce_perf and friends) over a ProcessGroup, for
// either backend: per op and message size, the time of one call averaged over iterations and
// ranks, algbw and busbw with nccl-tests' formulas (comms_logger.hpp), and the number of wrong
// elements in a checked run.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "zt/comm/process_group.hpp"

namespace zt::comm {

struct CommBenchOptions {
  // all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all, sendrecv
  std::vector<std::string> ops = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                  "reduce",     "all_to_all", "sendrecv"};
  size_t min_bytes = 8;
  size_t max_bytes = size_t(256) << 20;
  double step_factor = 2.0;
  DType dtype = DType::f32;
  ReduceOp redop = ReduceOp::sum;
  int root = 0;
  int warmup_iters = 5;
  int iters = 20;
  bool check = true;
  Device device = Device::cpu();  // where the buffers live: cpu (MPI) or cuda:N (NCCL)
};

struct CommBenchResult {
  std::string op;
  size_t bytes = 0;   // nccl-tests' size
  int64_t count = 0;  // elements of that size
  std::string dtype;
  std::string redop;  // "" for ops without one
  int root = -1;
  double time_us = 0;  // one call, averaged over iterations and ranks
  double algbw_gbs = 0;
  double busbw_gbs = 0;
  int64_t wrong = -1;  // elements wrong over all ranks; -1 when not checked
};

// Runs every op and size; on_result sees each row as it is measured (on every rank). Collective
// over the group.
std::vector<CommBenchResult> run_comm_bench(ProcessGroup& group, const CommBenchOptions& options,
                                            const std::function<void(const CommBenchResult&)>& on_result = {});

// nccl-tests' table layout.
std::string comm_bench_table_header();
std::string comm_bench_table_row(const CommBenchResult& r);

// Where and when a benchmark ran, for its JSON lines.
struct BenchContext {
  std::string backend;
  int world_size = 1;
  std::string host;
  std::string device;
  std::string date;  // UTC, ISO 8601
  std::string commit;
  int iters = 0;
  int warmup_iters = 0;
};
BenchContext bench_context(const ProcessGroup& group, const CommBenchOptions& options, const std::string& commit);
// One JSON object (one line) for a result.
std::string comm_bench_json(const CommBenchResult& r, const BenchContext& context);

// "8", "64K", "256M", "1G" -> bytes (nccl-tests' -b/-e syntax).
size_t parse_byte_size(const std::string& text);

}  // namespace zt::comm
