// The Work of an operation that a host thread (MPI's progress thread) carries out: a state that
// the progress thread completes or fails, and that the caller waits on with a condition
// variable until the op's deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "backend.hpp"

namespace zt::comm {

// "<what> did not complete within 2 s (ZT_COMM_TIMEOUT_S): ..."
std::string timeout_message(const OpInfo& info);

class HostWork : public WorkImpl {
 public:
  using Clock = std::chrono::steady_clock;
  // on_failure runs once, on the first failure (a timeout included), with its message: the
  // backend uses it to mark itself unusable.
  HostWork(OpInfo info, std::function<void(const std::string&)> on_failure);

  bool is_completed() override;
  void wait() override;

  // For the thread that carries the op out. Both return false when the op already finished
  // (for instance timed out while the transfer was still going).
  bool complete();
  bool fail(const std::string& message);

  const OpInfo& info() const { return info_; }
  Clock::time_point deadline() const { return deadline_; }

 private:
  enum class State { pending, done, failed };
  OpInfo info_;
  std::function<void(const std::string&)> on_failure_;
  Clock::time_point deadline_;
  std::mutex mutex_;
  std::condition_variable cv_;
  State state_ = State::pending;
  std::string error_;
};

// A Work that is already complete (synchronous backends).
Work completed_work();
// A Work that already failed with message (the error is thrown by wait()).
Work failed_work(const std::string& message);

}  // namespace zt::comm
