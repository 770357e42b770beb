// The comms logger (DeepSpeed's "comms_logger"): per collective, the count, bytes, latency and
// the algorithm and bus bandwidths with nccl-tests' formulas, and a summary table at the end of
// a run. Backends record each profiled operation when it completes; the logger is shared by
// every process group of the process and is safe to call from any thread.
//
// Sizes and bandwidths follow nccl-tests (doc/PERFORMANCE.md there), so that the figures line up
// with all_reduce_perf and friends:
//   size S: all_reduce, broadcast, reduce, send, recv: the tensor's bytes; all_gather: the
//           gathered output's bytes; reduce_scatter: the input's bytes; all_to_all: one rank's
//           input bytes.
//   algbw = S / time;  busbw = algbw * factor, factor = 2(n-1)/n for all_reduce, (n-1)/n for
//           all_gather, reduce_scatter and all_to_all, 1 for broadcast, reduce, send and recv.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace zt::comm {

// DeepSpeed's "comms_logger" keys and defaults. prof_ops takes our op names (all_reduce,
// all_gather, reduce_scatter, ...) and DeepSpeed's (all_gather_into_tensor,
// reduce_scatter_tensor, all_to_all_single, isend, irecv, ...).
struct CommsLoggerConfig {
  bool enabled = false;
  bool verbose = false;   // log every operation as it completes
  bool prof_all = true;   // profile every operation; otherwise only those in prof_ops
  std::vector<std::string> prof_ops;
};

// Our canonical name for an op name of ours or of DeepSpeed's; a zt::Error naming the valid ones
// for anything else.
std::string canonical_comm_op(const std::string& name);

// nccl-tests' bus-bandwidth factor for an op (canonical name) on n ranks.
double busbw_factor(std::string_view op, int world_size);

struct Bandwidth {
  double algbw_gbs = 0;  // GB/s, 1e9 bytes
  double busbw_gbs = 0;
};
Bandwidth comm_bandwidth(std::string_view op, size_t bytes, double seconds, int world_size);

// "8 B", "4.0 KiB", "256.0 MiB"
std::string format_bytes(size_t bytes);

class CommsLogger {
 public:
  struct OpStats {
    std::string op;
    size_t bytes = 0;  // nccl-tests' size S of each call in this row
    int64_t count = 0;
    double total_s = 0;
    double algbw_sum_gbs = 0;  // sums over the calls, for the averages
    double busbw_sum_gbs = 0;
  };

  void configure(const CommsLoggerConfig& config);  // validates prof_ops
  CommsLoggerConfig config() const;
  bool enabled() const;
  // Whether an op (canonical name) is to be timed and recorded.
  bool should_profile(std::string_view op) const;

  // One completed operation: its op (canonical), size S, latency, group size and description.
  void record(std::string_view op, size_t bytes, double seconds, int world_size, const std::string& group);

  // Rows sorted by op, then size.
  std::vector<OpStats> stats() const;
  // DeepSpeed's layout: op, message size, count, total and average latency, average algbw/busbw.
  std::string summary_table() const;
  // Logs the summary table (info level: rank 0 only unless ZT_LOG_ALL_RANKS=1); once per run
  // unless records arrived since.
  void log_summary();
  void reset();

 private:
  mutable std::mutex mutex_;
  CommsLoggerConfig config_;
  std::set<std::string, std::less<>> prof_ops_;  // canonical names
  std::vector<OpStats> rows_;
  bool summary_pending_ = false;
};

// The process's logger.
CommsLogger& comms_logger();

}  // namespace zt::comm
