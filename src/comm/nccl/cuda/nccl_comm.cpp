#include "nccl_comm.hpp"

#include "../../poll.hpp"
#include "nccl_check.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/log.hpp"

namespace zt::comm {

NcclComm::NcclComm(const ncclUniqueId& id, int rank, int size, int device, Clock::time_point deadline,
                   const std::string& what)
    : rank_(rank), size_(size), device_(device) {
  ZT_CUDA_CHECK(cudaSetDevice(device));
  ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  std::lock_guard<std::mutex> lock(mutex_);
  const ncclResult_t rc = ncclCommInitRankConfig(&comm_, size, id, rank, &config);
  if (rc != ncclSuccess && rc != ncclInProgress) {
    comm_ = nullptr;
    failed_ = true;
    cudaStreamDestroy(stream_);
    ZT_THROW(what, ": ncclCommInitRankConfig failed: ", ncclGetErrorString(rc));
  }
  try {
    wait_ready_locked(deadline, what);
  } catch (...) {
    cudaStreamDestroy(stream_);
    throw;
  }
}

NcclComm::~NcclComm() {
  // A destructor: report, never throw.
  std::lock_guard<std::mutex> lock(mutex_);
  if (cudaSetDevice(device_) != cudaSuccess) return;  // the CUDA runtime is gone (process exit)
  if (comm_ && !failed_.load()) {
    // Flush what was issued, giving peers a bounded time to do the same, then free.
    const ncclResult_t rc = ncclCommFinalize(comm_);
    ncclResult_t state = rc == ncclSuccess || rc == ncclInProgress ? ncclInProgress : rc;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    PollBackoff backoff;
    while (state == ncclInProgress && Clock::now() < deadline) {
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) break;
      if (state == ncclInProgress) backoff.pause();
    }
    if (state == ncclSuccess) ncclCommDestroy(comm_);
    else ncclCommAbort(comm_);
  } else if (comm_) {
    ncclCommAbort(comm_);
  }
  comm_ = nullptr;
  if (stream_) cudaStreamDestroy(stream_);
}

ncclResult_t NcclComm::async_state() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!comm_ || failed_.load()) return ncclInvalidUsage;
  ncclResult_t state = ncclSuccess;
  const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
  return rc != ncclSuccess ? rc : state;
}

std::string NcclComm::failure() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

void NcclComm::fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_locked(message);
}

void NcclComm::fail_locked(const std::string& message) {
  if (failed_.load()) return;
  failure_ = message;
  failed_.store(true);
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  log_error(message);
}

void NcclComm::throw_if_failed_locked(const std::string& what) {
  if (failed_.load()) ZT_THROW(what, ": the NCCL communicator is unusable after an earlier failure: ", failure_);
}

void NcclComm::fail_and_throw_locked(const std::string& what, ncclResult_t rc) {
  const std::string last = comm_ ? ncclGetLastError(comm_) : "";
  const std::string message = str(what, " failed in NCCL: ", ncclGetErrorString(rc), last.empty() ? "" : " (", last,
                                  last.empty() ? "" : ")");
  fail_locked(message);
  ZT_THROW(message);
}

void NcclComm::wait_ready_locked(Clock::time_point deadline, const std::string& what) {
  PollBackoff backoff;
  while (true) {
    throw_if_failed_locked(what);
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
    if (rc != ncclSuccess) state = rc;
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) fail_and_throw_locked(what, state);
    if (Clock::now() > deadline) {
      const std::string message = str(what, " did not complete within the timeout (ZT_COMM_TIMEOUT_S): a rank of the "
                                            "group may have died, hung, or not called it");
      fail_locked(message);
      ZT_THROW(message);
    }
    backoff.pause();
  }
}

}  // namespace zt::comm
