#include "poll.hpp"

#include <algorithm>
#include <thread>

#include "zt/core/env.hpp"

namespace zt::comm {

namespace {
// Defaults chosen with zt bench comm on 2 ranks (docs/COMM.md): yielding for 200 us after the
// last progress keeps small and mid-size messages fast (Open MPI's shared-memory transport only
// advances while someone polls); sleeps capped at 100 us cost a waiting rank a few percent of a
// core. Longer sleeps (1 ms) cost small messages ~20x in latency.
long yield_us_setting() {
  static const long v = long(env_int("ZT_COMM_POLL_YIELD_US", 200));
  return v;
}
long max_sleep_us_setting() {
  static const long v = std::max(1L, long(env_int("ZT_COMM_POLL_MAX_SLEEP_US", 100)));
  return v;
}
}  // namespace

PollBackoff::PollBackoff() : yield_us_(yield_us_setting()), max_sleep_us_(max_sleep_us_setting()) { reset(); }

void PollBackoff::reset() {
  idle_since_ = std::chrono::steady_clock::now();
  sleep_us_ = 0;
}

void PollBackoff::pause() {
  const auto idle = std::chrono::steady_clock::now() - idle_since_;
  if (idle < std::chrono::microseconds(yield_us_)) {
    std::this_thread::yield();
    return;
  }
  sleep_us_ = sleep_us_ == 0 ? 5 : std::min(sleep_us_ * 2, max_sleep_us_);
  std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
}

}  // namespace zt::comm
