#include "zt/core/op_profile.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <vector>

#include "zt/core/env.hpp"
#include "zt/core/error.hpp"
#if ZT_HAS_CUDA
#include <cuda_runtime.h>

#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"
#endif

namespace zt {

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  long long calls = 0;
  double host_ms = 0, device_ms = 0;
};

// An op in flight or done but not yet read: its events (device) or start time (host).
struct Pending {
  std::string name;
  bool on_device = false;
  Clock::time_point start;
#if ZT_HAS_CUDA
  cudaEvent_t begin = nullptr, end = nullptr;
#endif
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Totals> totals;
  std::vector<Pending> pending;  // device ops whose events are not read yet

  // Reads the events of finished device ops into the totals (waits for them).
  void drain() {
#if ZT_HAS_CUDA
    for (Pending& p : pending) {
      ZT_CUDA_CHECK(cudaEventSynchronize(p.end));
      float ms = 0;
      ZT_CUDA_CHECK(cudaEventElapsedTime(&ms, p.begin, p.end));
      totals[p.name].device_ms += ms;
      cudaEventDestroy(p.begin);
      cudaEventDestroy(p.end);
    }
#endif
    pending.clear();
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

thread_local int t_depth = 0;
thread_local std::vector<Pending> t_open;  // this thread's ops in progress, innermost last

}  // namespace

std::atomic<int>& profiling_flag() {  // -1: not read from the environment yet
  static std::atomic<int> flag{-1};
  return flag;
}

bool op_profiling() {
  int on = profiling_flag().load(std::memory_order_relaxed);
  if (on < 0) profiling_flag() = on = env_bool("ZT_PROFILE_OPS", false) ? 1 : 0;
  return on == 1;
}

void set_op_profiling(bool on) { profiling_flag() = on ? 1 : 0; }

OpScope::OpScope(const char* name, bool on_device) {
  if (!op_profiling()) return;
  active_ = true;
  if (t_depth++ > 0) return;
  Pending p;
  p.name = name;
  p.start = Clock::now();
#if ZT_HAS_CUDA
  p.on_device = on_device;
  if (on_device) {
    ZT_CUDA_CHECK(cudaEventCreate(&p.begin));
    ZT_CUDA_CHECK(cudaEventCreate(&p.end));
    ZT_CUDA_CHECK(cudaEventRecord(p.begin, cuda::compute_stream()));
  }
#endif
  slot_ = int(t_open.size());
  t_open.push_back(std::move(p));
}

OpScope::~OpScope() {
  if (!active_) return;
  --t_depth;
  if (slot_ < 0) return;
  Pending p = std::move(t_open[size_t(slot_)]);
  t_open.pop_back();  // scopes close in reverse order of opening on their thread
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  Totals& t = r.totals[p.name];
  ++t.calls;
  t.host_ms += std::chrono::duration<double, std::milli>(Clock::now() - p.start).count();
#if ZT_HAS_CUDA
  if (p.on_device) {
    cudaEventRecord(p.end, cuda::compute_stream());
    r.pending.push_back(std::move(p));
    if (r.pending.size() >= 4096) r.drain();
  }
#endif
}

std::string op_profile_table() {
  if (!op_profiling()) return "";
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.drain();
  std::vector<std::pair<std::string, Totals>> rows(r.totals.begin(), r.totals.end());
  auto key = [](const Totals& t) { return t.device_ms > 0 ? t.device_ms : t.host_ms; };
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) { return key(a.second) > key(b.second); });
  double total = 0;
  for (const auto& [name, t] : rows) total += key(t);
  std::string out = str("op profile (ZT_PROFILE_OPS): ", total, " ms in ops\n");
  char line[160];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "  %-28s %8lld calls %10.3f ms %5.1f%% %s\n", name.c_str(), t.calls, key(t),
                  total > 0 ? 100.0 * key(t) / total : 0.0, t.device_ms > 0 ? "(gpu)" : "(host)");
    out += line;
  }
  return out;
}

void op_profile_reset() {
  if (!op_profiling()) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.drain();
  r.totals.clear();
}

}  // namespace zt
