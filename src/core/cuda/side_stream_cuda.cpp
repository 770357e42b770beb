// SideStream on a CUDA device: a non-blocking stream of its own and two events, one for each
// direction of ordering. On the host device the work runs at once, as the build without CUDA does.
#include "zt/core/side_stream.hpp"

#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt {

struct SideStream::Impl {
  cudaStream_t stream = nullptr;
  cudaEvent_t forked = nullptr, done = nullptr;
  bool unjoined = false;  // side work queued since the last join()
};

SideStream::SideStream(Device device) : device_(device), impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) return;
  cuda::set_device(device.index);
  ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  ZT_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->forked, cudaEventDisableTiming));
  ZT_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->done, cudaEventDisableTiming));
}

SideStream::~SideStream() {
  if (!device_.is_cuda() || cudaSetDevice(device_.index) != cudaSuccess) return;
  // A destructor path: order and release, never throw.
  if (impl_->unjoined && cudaEventRecord(impl_->done, impl_->stream) == cudaSuccess)
    cudaStreamWaitEvent(cuda::compute_stream(), impl_->done, 0);
  cudaStreamSynchronize(impl_->stream);
  cudaEventDestroy(impl_->forked);
  cudaEventDestroy(impl_->done);
  cudaStreamDestroy(impl_->stream);
}

void SideStream::fork() {
  if (!device_.is_cuda()) return;
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaEventRecord(impl_->forked, cuda::compute_stream()));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(impl_->stream, impl_->forked, 0));
}

void SideStream::run(const std::function<void()>& ops) {
  if (!device_.is_cuda()) {
    ops();
    return;
  }
  cuda::set_device(device_.index);
  impl_->unjoined = true;
  cuda::ComputeStreamGuard guard(impl_->stream);
  ops();
}

void SideStream::join() {
  if (!device_.is_cuda() || !impl_->unjoined) return;
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaEventRecord(impl_->done, impl_->stream));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(), impl_->done, 0));
  impl_->unjoined = false;
}

}  // namespace zt
