#include "zt/comm/comms_logger.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "zt/core/error.hpp"
#include "zt/core/log.hpp"

namespace zt::comm {

namespace {

const char* const kOps[] = {"all_reduce", "reduce_scatter", "reduce_scatter_v", "all_gather", "all_gather_v",
                            "broadcast",  "reduce",         "all_to_all",       "send",       "recv",
                            "barrier"};

// DeepSpeed's names (deepspeed.comm) for the same operations.
const std::map<std::string, std::string>& deepspeed_aliases() {
  static const std::map<std::string, std::string> m = {
      {"all_gather_into_tensor", "all_gather"}, {"all_gather_base", "all_gather"},
      {"allgather_fn", "all_gather"},           {"reduce_scatter_tensor", "reduce_scatter"},
      {"reduce_scatter_base", "reduce_scatter"}, {"reduce_scatter_fn", "reduce_scatter"},
      {"all_to_all_single", "all_to_all"},      {"isend", "send"},
      {"irecv", "recv"},                        {"all_reduce_coalesced", "all_reduce"},
      {"inference_all_reduce", "all_reduce"},   {"allreduce", "all_reduce"},
      {"allgather", "all_gather"},              {"reducescatter", "reduce_scatter"},
      {"alltoall", "all_to_all"}};
  return m;
}

}  // namespace

std::string canonical_comm_op(const std::string& name) {
  for (const char* op : kOps)
    if (name == op) return name;
  const auto& aliases = deepspeed_aliases();
  if (auto it = aliases.find(name); it != aliases.end()) return it->second;
  std::string valid;
  for (const char* op : kOps) valid += str(valid.empty() ? "" : ", ", op);
  ZT_THROW("unknown communication op '", name, "' (expected one of ", valid,
           ", or DeepSpeed's all_gather_into_tensor, reduce_scatter_tensor, all_to_all_single, isend, irecv)");
}

double busbw_factor(std::string_view op, int world_size) {
  const double n = world_size;
  if (op == "all_reduce") return 2.0 * (n - 1) / n;
  if (op == "all_gather" || op == "all_gather_v" || op == "reduce_scatter" || op == "reduce_scatter_v" ||
      op == "all_to_all")
    return (n - 1) / n;
  if (op == "barrier") return 0.0;
  return 1.0;  // broadcast, reduce, send, recv
}

Bandwidth comm_bandwidth(std::string_view op, size_t bytes, double seconds, int world_size) {
  Bandwidth b;
  if (seconds <= 0) return b;
  b.algbw_gbs = double(bytes) / seconds / 1e9;
  b.busbw_gbs = b.algbw_gbs * busbw_factor(op, world_size);
  return b;
}

std::string format_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%zu B", bytes);
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

void CommsLogger::configure(const CommsLoggerConfig& config) {
  std::set<std::string, std::less<>> ops;
  for (const std::string& name : config.prof_ops) ops.insert(canonical_comm_op(name));
  std::lock_guard<std::mutex> lock(mutex_);
  config_ = config;
  prof_ops_ = std::move(ops);
}

CommsLoggerConfig CommsLogger::config() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return config_;
}

bool CommsLogger::enabled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return config_.enabled;
}

bool CommsLogger::should_profile(std::string_view op) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!config_.enabled) return false;
  if (config_.prof_all) return true;
  // The _v variants count as their op for prof_ops.
  if (op == "all_gather_v") op = "all_gather";
  if (op == "reduce_scatter_v") op = "reduce_scatter";
  return prof_ops_.find(op) != prof_ops_.end();
}

void CommsLogger::record(std::string_view op, size_t bytes, double seconds, int world_size,
                         const std::string& group) {
  const Bandwidth bw = comm_bandwidth(op, bytes, seconds, world_size);
  bool verbose;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    verbose = config_.verbose;
    auto it = std::find_if(rows_.begin(), rows_.end(), [&](const OpStats& r) { return r.op == op && r.bytes == bytes; });
    if (it == rows_.end()) {
      rows_.push_back(OpStats{std::string(op), bytes});
      it = rows_.end() - 1;
    }
    it->count += 1;
    it->total_s += seconds;
    it->algbw_sum_gbs += bw.algbw_gbs;
    it->busbw_sum_gbs += bw.busbw_gbs;
    summary_pending_ = true;
  }
  if (verbose) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "comm op: %s | time (ms): %.3f | msg size: %s | algbw (GB/s): %.2f | busbw (GB/s): %.2f",
                  std::string(op).c_str(), seconds * 1e3, format_bytes(bytes).c_str(), bw.algbw_gbs, bw.busbw_gbs);
    log_message(LogLevel::info, str(buf, " | ", group));
  }
}

std::vector<CommsLogger::OpStats> CommsLogger::stats() const {
  std::vector<OpStats> rows;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rows = rows_;
  }
  std::sort(rows.begin(), rows.end(), [](const OpStats& a, const OpStats& b) {
    return a.op != b.op ? a.op < b.op : a.bytes < b.bytes;
  });
  return rows;
}

std::string CommsLogger::summary_table() const {
  const std::vector<OpStats> rows = stats();
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-18s %14s %8s %18s %16s %16s %16s\n", "Comm. Op", "Message Size", "Count",
                "Total Latency(ms)", "Avg Latency(ms)", "algbw_avg (GB/s)", "busbw_avg (GB/s)");
  out += buf;
  std::string last_op;
  for (const OpStats& r : rows) {
    if (r.op != last_op) {
      out += r.op + "\n";
      last_op = r.op;
    }
    const double n = double(std::max<int64_t>(r.count, 1));
    std::snprintf(buf, sizeof buf, "%-18s %14s %8lld %18.3f %16.3f %16.2f %16.2f\n", "", format_bytes(r.bytes).c_str(),
                  (long long)r.count, r.total_s * 1e3, r.total_s * 1e3 / n, r.algbw_sum_gbs / n, r.busbw_sum_gbs / n);
    out += buf;
  }
  return out;
}

void CommsLogger::log_summary() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!summary_pending_) return;
    summary_pending_ = false;
  }
  if (log_enabled(LogLevel::info)) log_message(LogLevel::info, "comms logger summary:\n" + summary_table());
}

void CommsLogger::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  rows_.clear();
  summary_pending_ = false;
}

CommsLogger& comms_logger() {
  static CommsLogger logger;
  return logger;
}

}  // namespace zt::comm
