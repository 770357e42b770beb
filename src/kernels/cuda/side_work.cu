#include "side_work.hpp"

#include <map>

#include "zt/core/cuda_check.hpp"

namespace zt::cuda {

namespace {

// The calling thread's side stream and its two events (fork, done) on the current device; they
// live as long as the thread.
struct SideStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t forked = nullptr, done = nullptr;
};

SideStream& side_stream() {
  thread_local std::map<int, SideStream> streams;
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  SideStream& s = streams[device];
  if (!s.stream) {
    ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&s.forked, cudaEventDisableTiming));
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  }
  return s;
}

}  // namespace

SideWork::SideWork(bool enabled) {
  if (!enabled) return;
  SideStream& s = side_stream();
  ZT_CUDA_CHECK(cudaEventRecord(s.forked, compute_stream()));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.forked, 0));
  side_ = s.stream, done_ = s.done;
}

void SideWork::join() {
  if (!side_) return;
  const cudaStream_t side = side_;
  side_ = nullptr;
  ZT_CUDA_CHECK(cudaEventRecord(done_, side));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(compute_stream(), done_, 0));
}

SideWork::~SideWork() {
  if (!side_) return;
  if (cudaEventRecord(done_, side_) == cudaSuccess) cudaStreamWaitEvent(compute_stream(), done_, 0);
}

}  // namespace zt::cuda
