// CopyStream on a CUDA device: a non-blocking stream of its own, one event per copy (from a pool),
// the tensors of each copy held until its event has been seen complete. On the host device it
// copies at once, as the build without CUDA does.
#include "zt/core/copy_stream.hpp"

#include <deque>
#include <vector>

#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt {

struct CopyStream::Impl {
  struct InFlight {
    Ticket ticket;
    cudaEvent_t done;
    Tensor dst, src;  // alive until the copy finished
  };
  cudaStream_t stream = nullptr;
  std::deque<InFlight> in_flight;  // in ticket order
  std::vector<cudaEvent_t> spare;
  cudaEvent_t ordering = nullptr;  // between this stream and the compute stream

  cudaEvent_t take_event() {
    if (!spare.empty()) {
      cudaEvent_t e = spare.back();
      spare.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  // Retires every copy up to ticket t, which the caller has seen complete.
  void retire(Ticket t) {
    while (!in_flight.empty() && in_flight.front().ticket <= t) {
      spare.push_back(in_flight.front().done);
      in_flight.pop_front();
    }
  }
  // Retires the leading copies that have finished (so a stream nobody waits on stays small).
  void retire_finished() {
    while (!in_flight.empty()) {
      const cudaError_t state = cudaEventQuery(in_flight.front().done);
      if (state == cudaErrorNotReady) return;
      ZT_CUDA_CHECK(state);
      retire(in_flight.front().ticket);
    }
  }
  Ticket issue(Ticket t, const Tensor& dst, const Tensor& src) {
    cudaEvent_t done = take_event();
    ZT_CUDA_CHECK(cudaEventRecord(done, stream));
    in_flight.push_back({t, done, dst, src});
    return t;
  }
};

CopyStream::CopyStream(Device device) : device_(device), impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) return;
  cuda::set_device(device.index);
  ZT_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  ZT_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->ordering, cudaEventDisableTiming));
}

CopyStream::~CopyStream() {
  if (!device_.is_cuda()) return;
  // A destructor path: wait and release, never throw.
  if (cudaSetDevice(device_.index) != cudaSuccess) return;
  cudaStreamSynchronize(impl_->stream);
  for (auto& f : impl_->in_flight) cudaEventDestroy(f.done);
  for (cudaEvent_t e : impl_->spare) cudaEventDestroy(e);
  cudaEventDestroy(impl_->ordering);
  cudaStreamDestroy(impl_->stream);
}

void CopyStream::after_compute() {
  if (!device_.is_cuda()) return;
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaEventRecord(impl_->ordering, cuda::compute_stream()));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(impl_->stream, impl_->ordering, 0));
}

CopyStream::Ticket CopyStream::copy(const Tensor& dst, const Tensor& src) {
  if (!device_.is_cuda()) {
    dst.copy_from(src);
    return ++issued_;
  }
  ZT_CHECK(dst.defined() && src.defined() && dst.dtype() == src.dtype() && dst.numel() == src.numel(),
           "CopyStream: cannot copy ", src.defined() ? src.describe() : "none", " into ",
           dst.defined() ? dst.describe() : "none");
  ZT_CHECK(dst.device().is_cpu() != src.device().is_cpu(), "CopyStream on ", device_.name(),
           ": copies go between host and device memory, got ", src.describe(), " into ", dst.describe());
  cuda::set_device(device_.index);
  impl_->retire_finished();
  const Ticket t = ++issued_;
  if (dst.nbytes() > 0)
    ZT_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDefault, impl_->stream));
  return impl_->issue(t, dst, src);
}

CopyStream::Ticket CopyStream::fill_zero(const Tensor& dst) {
  if (!device_.is_cuda() || dst.device().is_cpu()) {
    dst.zero_();
    return ++issued_;
  }
  ZT_CHECK(dst.device() == device_, "CopyStream on ", device_.name(), ": cannot zero ", dst.describe());
  cuda::set_device(device_.index);
  impl_->retire_finished();
  const Ticket t = ++issued_;
  if (dst.nbytes() > 0) ZT_CUDA_CHECK(cudaMemsetAsync(dst.raw(), 0, dst.nbytes(), impl_->stream));
  return impl_->issue(t, dst, Tensor());
}

void CopyStream::wait(Ticket t) {
  if (!device_.is_cuda() || t == 0) return;
  cudaEvent_t done = nullptr;
  for (const auto& f : impl_->in_flight)
    if (f.ticket == t) done = f.done;
  if (!done) return;  // retired: it had finished
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaEventSynchronize(done));  // copies finish in order: the earlier ones too
  impl_->retire(t);
}

void CopyStream::synchronize() {
  if (!device_.is_cuda()) return;
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
  impl_->retire(issued_);
}

void CopyStream::before_compute() {
  if (!device_.is_cuda()) return;
  cuda::set_device(device_.index);
  ZT_CUDA_CHECK(cudaEventRecord(impl_->ordering, impl_->stream));
  ZT_CUDA_CHECK(cudaStreamWaitEvent(cuda::compute_stream(), impl_->ordering, 0));
}

}  // namespace zt
