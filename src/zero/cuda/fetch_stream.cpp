// FetchStream on a GPU: a non-blocking stream of its own for host-to-device copies, CUDA events
// between it and the compute stream. On CPU ranks of a CUDA build it behaves as without CUDA.
#include "../fetch_stream.hpp"

#include <cuda_runtime.h>

#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt::zero {

namespace {
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t as_event(const std::shared_ptr<void>& e) { return static_cast<cudaEvent_t>(e.get()); }
}  // namespace

FetchStream::FetchStream(Device device) : device_(device) {
  if (!device.is_cuda()) return;
  cuda::set_device(device.index);
  cudaStream_t stream = nullptr;
  ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
}

FetchStream::~FetchStream() {
  if (!stream_) return;
  // A destructor path: nothing thrown. Copies still queued finish before the stream goes.
  cudaStreamSynchronize(as_stream(stream_));
  cudaStreamDestroy(as_stream(stream_));
}

Tensor FetchStream::empty(int64_t n, DType dtype) const {
  if (!stream_) return Tensor::empty({n}, dtype, device_);
  // cudaMallocAsync on this stream: the pool orders the block after its last use on any stream.
  cuda::ComputeStreamGuard guard(as_stream(stream_));
  return Tensor::empty({n}, dtype, device_);
}

void FetchStream::copy(const Tensor& dst, const Tensor& src) const {
  ZT_CHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "parameter fetch: cannot copy ", src.describe(),
           " into ", dst.describe());
  if (!stream_ || (dst.device().is_cpu() && src.device().is_cpu())) {
    dst.copy_from(src);
    return;
  }
  if (dst.nbytes() == 0) return;
  ZT_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDefault, as_stream(stream_)));
}

FetchEvent FetchStream::record() const {
  FetchEvent e;
  if (!stream_) return e;
  cudaEvent_t event = nullptr;
  ZT_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  e.event_ = std::shared_ptr<void>(event, [](void* p) { cudaEventDestroy(static_cast<cudaEvent_t>(p)); });
  ZT_CUDA_CHECK(cudaEventRecord(event, as_stream(stream_)));
  return e;
}

void FetchStream::compute_waits(const FetchEvent& event) const {
  if (!event.empty()) ZT_CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(), as_event(event.event_), 0));
}

void FetchStream::host_waits(const FetchEvent& event) const {
  if (!event.empty()) ZT_CUDA_CHECK(cudaEventSynchronize(as_event(event.event_)));
}

void FetchStream::synchronize() const {
  if (stream_) ZT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream_)));
}

void* FetchStream::compute_handle() const { return stream_ ? static_cast<void*>(cuda::compute_stream()) : nullptr; }

}  // namespace zt::zero
