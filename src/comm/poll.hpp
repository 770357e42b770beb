// Waiting without burning a core: every loop that waits for the network or a device pauses
// through PollBackoff, which yields the CPU for a short while after the last progress (so that
// small messages keep their latency) and then sleeps, doubling up to a cap. With more ranks than
// cores (--oversubscribe), a rank that waits leaves the CPU to the ranks that compute.
#pragma once

#include <chrono>

namespace zt::comm {

class PollBackoff {
 public:
  PollBackoff();
  void reset();  // progress was made: start over with yields
  void pause();  // one pause between two polls

 private:
  std::chrono::steady_clock::time_point idle_since_;
  long sleep_us_ = 0;
  long yield_us_;      // ZT_COMM_POLL_YIELD_US
  long max_sleep_us_;  // ZT_COMM_POLL_MAX_SLEEP_US
};

}  // namespace zt::comm
