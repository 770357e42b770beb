// One NCCL communicator, non-blocking (config.blocking = 0) so that no NCCL call can hang the
// host: every call returns at once and we poll ncclCommGetAsyncError, sleeping between polls,
// until the communicator is ready, failed, or past the op's deadline. On failure or timeout the
// communicator is aborted (which also frees kernels waiting for a dead peer) and stays failed.
// Shared by the backend and its Work handles, which may outlive it.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace zt::comm {

class NcclComm {
 public:
  using Clock = std::chrono::steady_clock;

  // Collective over the ranks that share id; waits up to deadline for the communicator.
  NcclComm(const ncclUniqueId& id, int rank, int size, int device, Clock::time_point deadline, const std::string& what);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }  // the communication stream

  // Runs launch(comm) under the communicator's lock, then waits (still holding it) until the
  // communicator accepted the calls. Throws zt::Error, failing the communicator, on error or
  // timeout.
  template <class F>
  void call(F&& launch, Clock::time_point deadline, const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    throw_if_failed_locked(what);
    ncclResult_t rc = launch(comm_);
    if (rc != ncclSuccess && rc != ncclInProgress) fail_and_throw_locked(what, rc);
    wait_ready_locked(deadline, what);
  }

  // ncclSuccess, ncclInProgress, or the communicator's asynchronous error (ncclInvalidUsage
  // once it failed).
  ncclResult_t async_state();
  bool failed() const { return failed_.load(); }
  std::string failure();
  // Marks the communicator failed with message and aborts it; later calls fail at once.
  void fail(const std::string& message);

 private:
  void throw_if_failed_locked(const std::string& what);
  [[noreturn]] void fail_and_throw_locked(const std::string& what, ncclResult_t rc);
  void fail_locked(const std::string& message);
  void wait_ready_locked(Clock::time_point deadline, const std::string& what);

  std::mutex mutex_;  // guards comm_ and failure_; serializes NCCL calls
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int rank_, size_, device_;
  std::atomic<bool> failed_{false};
  std::string failure_;
};

}  // namespace zt::comm
