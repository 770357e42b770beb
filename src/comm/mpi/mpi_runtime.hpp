// The process's MPI: one progress thread makes every MPI call (MPI_Init_thread and
// MPI_Finalize included, so MPI_THREAD_FUNNELED is all we ask of the implementation). Callers
// submit operations to a FIFO; the thread posts their non-blocking MPI_I* calls in submission
// order (so that all ranks post a communicator's collectives in the same order) and polls them
// with MPI_Testall, pausing through PollBackoff when nothing progressed. Progress therefore
// continues while the callers compute, and a caller that waits sleeps on its HostWork.
//
// Failure: an op past its deadline is failed (HostWork's timeout message) and the runtime is
// marked broken; from then on submissions fail at once and shutdown skips MPI_Finalize, since
// MPI cannot cancel a collective and its state is unknown.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "../host_work.hpp"

namespace zt::comm {

// One operation on the progress thread.
struct MpiOp {
  std::shared_ptr<HostWork> work;
  // Posts the op's non-blocking calls, appending their requests (may also run blocking calls).
  std::function<void(std::vector<MPI_Request>&)> start;
  // Runs once every request completed: copies staged results back, divides for avg.
  std::function<void()> finish;
  std::vector<MPI_Request> requests;
  HostWork::Clock::time_point started;
};

class MpiRuntime : public std::enable_shared_from_this<MpiRuntime> {
 public:
  // The process's runtime, starting MPI on the first call. A zt::Error once it was shut down.
  static std::shared_ptr<MpiRuntime> get();
  // Shuts the process's runtime down if it was started (see finalize()).
  static void shutdown_process_runtime();

  MpiRuntime();
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }

  // A HostWork for info whose failure marks this runtime broken.
  std::shared_ptr<HostWork> make_work(const OpInfo& info);
  // Queues op; its work fails at once when the runtime is broken or shut down.
  Work submit(std::shared_ptr<MpiOp> op);
  // Runs fn (blocking MPI calls) on the progress thread and waits for it, up to info's timeout.
  void call(const OpInfo& info, std::function<void()> fn);

  bool broken() const { return broken_.load(); }
  std::string failure() const;
  void mark_broken(const std::string& message);

  // Drains the queue, then calls MPI_Finalize (if we initialized MPI and nothing failed) and
  // stops the thread.
  void shutdown();

 private:
  void thread_main(std::promise<void>* ready);
  void start_op(const std::shared_ptr<MpiOp>& op, std::list<std::shared_ptr<MpiOp>>& active);
  bool poll_active(std::list<std::shared_ptr<MpiOp>>& active);

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<MpiOp>> queue_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::atomic<bool> broken_{false};
  std::atomic<bool> in_blocking_call_{false};
  mutable std::mutex failure_mutex_;
  std::string failure_;
  // Ops given up on (timed out or failed) whose requests MPI still holds: their buffers stay
  // alive for as long as the process, since MPI may still write into them.
  std::vector<std::shared_ptr<MpiOp>> abandoned_;
  bool owns_mpi_ = false;  // we called MPI_Init_thread, so we call MPI_Finalize
  int world_rank_ = 0;
  int world_size_ = 1;
};

}  // namespace zt::comm
