#include "mpi_runtime.hpp"

#include "../poll.hpp"
#include "mpi_check.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/core/log.hpp"

namespace zt::comm {

namespace {
std::mutex g_runtime_mutex;
std::shared_ptr<MpiRuntime> g_runtime;  // kept after shutdown so that late Work handles stay valid
bool g_runtime_shut_down = false;

double seconds_since(HostWork::Clock::time_point t) {
  return std::chrono::duration<double>(HostWork::Clock::now() - t).count();
}
}  // namespace

std::shared_ptr<MpiRuntime> MpiRuntime::get() {
  std::lock_guard<std::mutex> lock(g_runtime_mutex);
  ZT_CHECK(!g_runtime_shut_down, "MPI was finalized in this process (zt::comm::finalize) and cannot start again");
  if (!g_runtime) {
    // The logger must outlive the runtime at static destruction (the progress thread records
    // into it until it stops): construct it first.
    comms_logger();
    g_runtime = std::make_shared<MpiRuntime>();
  }
  return g_runtime;
}

void MpiRuntime::shutdown_process_runtime() {
  std::shared_ptr<MpiRuntime> runtime;
  {
    std::lock_guard<std::mutex> lock(g_runtime_mutex);
    if (!g_runtime) return;
    g_runtime_shut_down = true;
    runtime = g_runtime;
  }
  runtime->shutdown();
}

MpiRuntime::MpiRuntime() {
  std::promise<void> ready;
  std::future<void> started = ready.get_future();
  thread_ = std::thread([this, &ready] { thread_main(&ready); });
  try {
    started.get();
  } catch (...) {
    thread_.join();
    stopped_ = true;
    throw;
  }
}

MpiRuntime::~MpiRuntime() { shutdown(); }

void MpiRuntime::thread_main(std::promise<void>* ready) {
  try {
    int initialized = 0;
    ZT_MPI_CHECK(MPI_Initialized(&initialized), "starting MPI");
    if (!initialized) {
      int provided = 0;
      ZT_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "starting MPI");
      owns_mpi_ = true;
    } else {
      // The program started MPI itself: our thread is not its main thread, so we need at least
      // serialized calls.
      int provided = 0;
      ZT_MPI_CHECK(MPI_Query_thread(&provided), "starting MPI");
      ZT_CHECK(provided >= MPI_THREAD_SERIALIZED, "the program initialized MPI with thread level ", provided,
               ", but zt's MPI progress thread needs MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE: start MPI with "
               "MPI_Init_thread at one of those levels, or leave starting MPI to zt::comm::init_process_group");
    }
    ZT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "starting MPI");
    ZT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_), "starting MPI");
    ZT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_), "starting MPI");
    ready->set_value();
  } catch (...) {
    ready->set_exception(std::current_exception());
    return;
  }

  std::list<std::shared_ptr<MpiOp>> active;
  PollBackoff backoff;
  while (true) {
    std::deque<std::shared_ptr<MpiOp>> incoming;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Idle: sleep until an op arrives. Busy: take what arrived and go on polling.
      if (active.empty()) cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      incoming.swap(queue_);
      if (stopping_ && incoming.empty() && (active.empty() || broken_.load())) break;
    }
    bool progressed = !incoming.empty();
    for (const auto& op : incoming) start_op(op, active);
    progressed |= poll_active(active);
    if (progressed || active.empty()) backoff.reset();
    else backoff.pause();
  }
  for (auto& op : active) abandoned_.push_back(op);
  if (owns_mpi_ && !broken_.load()) {
    const int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) log_warn("MPI_Finalize failed: ", mpi_error_string(rc));
  }
}

void MpiRuntime::start_op(const std::shared_ptr<MpiOp>& op, std::list<std::shared_ptr<MpiOp>>& active) {
  if (op->work->is_completed()) return;  // the caller gave up while it was queued
  if (broken_.load()) {
    op->work->fail(str(op->work->info().what, ": MPI communication is unusable after an earlier failure: ", failure()));
    return;
  }
  try {
    op->started = HostWork::Clock::now();
    in_blocking_call_.store(true);
    op->start(op->requests);
    in_blocking_call_.store(false);
    active.push_back(op);
  } catch (const std::exception& e) {
    in_blocking_call_.store(false);
    abandoned_.push_back(op);
    op->work->fail(str(op->work->info().what, ": ", e.what()));
  }
}

bool MpiRuntime::poll_active(std::list<std::shared_ptr<MpiOp>>& active) {
  bool progressed = false;
  for (auto it = active.begin(); it != active.end();) {
    MpiOp& op = **it;
    const OpInfo& info = op.work->info();
    if (op.work->is_completed()) {  // failed by its waiter at the deadline
      abandoned_.push_back(*it);
      it = active.erase(it);
      continue;
    }
    int done = 1;
    int rc = MPI_SUCCESS;
    if (!op.requests.empty())
      rc = MPI_Testall(int(op.requests.size()), op.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      abandoned_.push_back(*it);
      op.work->fail(str(info.what, " failed in MPI: ", mpi_error_string(rc)));
      it = active.erase(it);
      continue;
    }
    if (done) {
      try {
        if (op.finish) op.finish();
        // The op's temporaries (staging buffers the lambdas hold) go before its waiter wakes, so that
        // what the waiter reads of the memory counters is settled.
        op.finish = nullptr;
        op.start = nullptr;
        const double seconds = seconds_since(op.started);
        if (op.work->complete() && info.profile)
          comms_logger().record(info.op, info.bytes, seconds, info.group_size, info.what);
      } catch (const std::exception& e) {
        op.work->fail(str(info.what, ": ", e.what()));
      }
      it = active.erase(it);
      progressed = true;
      continue;
    }
    if (HostWork::Clock::now() > op.work->deadline()) {
      abandoned_.push_back(*it);
      op.work->fail(timeout_message(info));
      it = active.erase(it);
      continue;
    }
    ++it;
  }
  return progressed;
}

std::shared_ptr<HostWork> MpiRuntime::make_work(const OpInfo& info) {
  std::weak_ptr<MpiRuntime> self = weak_from_this();
  return std::make_shared<HostWork>(info, [self](const std::string& message) {
    if (auto runtime = self.lock()) runtime->mark_broken(message);
  });
}

Work MpiRuntime::submit(std::shared_ptr<MpiOp> op) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const OpInfo& info = op->work->info();
    if (stopping_ || stopped_)
      return failed_work(str(info.what, ": MPI was shut down (zt::comm::finalize was called)"));
    if (broken_.load())
      return failed_work(str(info.what, ": MPI communication is unusable after an earlier failure: ", failure()));
    queue_.push_back(op);
  }
  cv_.notify_one();
  return Work(op->work);
}

void MpiRuntime::call(const OpInfo& info, std::function<void()> fn) {
  auto op = std::make_shared<MpiOp>();
  op->work = make_work(info);
  op->start = [fn = std::move(fn)](std::vector<MPI_Request>&) { fn(); };
  submit(op).wait();
}

std::string MpiRuntime::failure() const {
  std::lock_guard<std::mutex> lock(failure_mutex_);
  return failure_;
}

void MpiRuntime::mark_broken(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(failure_mutex_);
    if (!failure_.empty()) return;
    failure_ = message;
  }
  broken_.store(true);
  cv_.notify_all();
}

void MpiRuntime::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    // A thread stuck in a blocking MPI call after a failure would never return: leave it.
    if (broken_.load() && in_blocking_call_.load()) thread_.detach();
    else thread_.join();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stopped_ = true;
}

}  // namespace zt::comm
