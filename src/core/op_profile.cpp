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
  double gap_before_ms = 0;  // compute stream time from the previous op's end to this op's start
};

// An op in flight or done but not yet read: its events (device) or start time (host).
struct Pending {
  std::string name;
  bool on_device = false;
  Clock::time_point start;
#if ZT_HAS_CUDA
  cudaEvent_t begin = nullptr, end = nullptr;
  cudaStream_t stream = nullptr;
#endif
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Totals> totals;
  std::vector<Pending> pending;  // device ops whose events are not read yet
#if ZT_HAS_CUDA
  cudaEvent_t last_end = nullptr;  // the end of the last device op read, and its stream
  cudaStream_t last_stream = nullptr;
#endif

  // Reads the events of finished device ops into the totals (waits for them), with the gap on
  // the stream between each op and the one before it on the same stream.
  void drain() {
#if ZT_HAS_CUDA
    for (Pending& p : pending) {
      ZT_CUDA_CHECK(cudaEventSynchronize(p.end));
      float ms = 0;
      ZT_CUDA_CHECK(cudaEventElapsedTime(&ms, p.begin, p.end));
      Totals& t = totals[p.name];
      t.device_ms += ms;
      if (last_end && last_stream == p.stream) {
        float gap = 0;
        ZT_CUDA_CHECK(cudaEventElapsedTime(&gap, last_end, p.begin));
        t.gap_before_ms += std::max(gap, 0.0f);
      }
      forget_last();
      last_end = p.end, last_stream = p.stream;
      cudaEventDestroy(p.begin);
    }
#endif
    pending.clear();
  }

  // Starts the gaps afresh (after a reset, the time spent resetting is no gap of the run's).
  void forget_last() {
#if ZT_HAS_CUDA
    if (last_end) cudaEventDestroy(last_end);
    last_end = nullptr;
#endif
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
    p.stream = cuda::compute_stream();
    ZT_CUDA_CHECK(cudaEventRecord(p.begin, p.stream));
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
    cudaEventRecord(p.end, p.stream);
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
  double total = 0, gaps = 0;
  for (const auto& [name, t] : rows) total += key(t), gaps += t.gap_before_ms;
  std::string out = str("op profile (ZT_PROFILE_OPS): ", total, " ms in ops, ", gaps,
                        " ms between them on the GPU (the stream waiting for the host, or work outside the table)\n");
  char line[200];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof line, "  %-28s %8lld calls %10.3f ms %5.1f%% %s  %8.3f ms before\n", name.c_str(),
                  t.calls, key(t), total > 0 ? 100.0 * key(t) / total : 0.0, t.device_ms > 0 ? "(gpu)" : "(host)",
                  t.gap_before_ms);
    out += line;
  }
  return out;
}

void op_profile_reset() {
  if (!op_profiling()) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.drain();
  r.forget_last();
  r.totals.clear();
}

}  // namespace zt
