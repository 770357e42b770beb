#include "host_work.hpp"

#include "zt/core/error.hpp"

namespace zt::comm {

std::string timeout_message(const OpInfo& info) {
  return str(info.what, " did not complete within ", info.timeout_s,
             " s (ZT_COMM_TIMEOUT_S): a rank of the group may have died, hung, or not called it");
}

HostWork::HostWork(OpInfo info, std::function<void(const std::string&)> on_failure)
    : info_(std::move(info)), on_failure_(std::move(on_failure)) {
  deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(info_.timeout_s));
}

bool HostWork::is_completed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_ != State::pending;
}

void HostWork::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  // A blocking wait on the condition variable: the waiting thread sleeps until the progress
  // thread finishes the op or the deadline passes.
  cv_.wait_until(lock, deadline_, [&] { return state_ != State::pending; });
  if (state_ == State::done) return;
  if (state_ == State::pending) {
    lock.unlock();
    fail(timeout_message(info_));
    lock.lock();
  }
  if (state_ == State::done) return;  // finished in the meantime
  const std::string message = error_;
  lock.unlock();
  ZT_THROW(message);
}

bool HostWork::complete() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != State::pending) return false;
    state_ = State::done;
  }
  cv_.notify_all();
  return true;
}

bool HostWork::fail(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != State::pending) return false;
    state_ = State::failed;
    error_ = message;
  }
  cv_.notify_all();
  if (on_failure_) on_failure_(message);
  return true;
}

namespace {
class FailedWork : public WorkImpl {
 public:
  explicit FailedWork(std::string message) : message_(std::move(message)) {}
  bool is_completed() override { return true; }
  void wait() override { ZT_THROW(message_); }

 private:
  std::string message_;
};
}  // namespace

Work completed_work() { return Work(); }
Work failed_work(const std::string& message) { return Work(std::make_shared<FailedWork>(message)); }

}  // namespace zt::comm
