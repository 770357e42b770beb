// QueuedReadback on a CUDA device: a pinned host buffer (kept while the size stays the same), the
// copy queued on the compute stream and an event recorded after it.
#include "zt/core/queued_readback.hpp"

#include <utility>

#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt {

struct QueuedReadback::Mark {
  cudaEvent_t done = nullptr;
  int device = -1;
  ~Mark() {
    if (done && cudaSetDevice(device) == cudaSuccess) cudaEventDestroy(done);  // a destructor: never throws
  }
};

QueuedReadback::QueuedReadback() = default;
QueuedReadback::~QueuedReadback() {
  // The copy may still be queued: it writes host_, which must outlive it.
  if (pending_ && mark_ && cudaSetDevice(mark_->device) == cudaSuccess) cudaEventSynchronize(mark_->done);
}
QueuedReadback::QueuedReadback(QueuedReadback&& other) noexcept
    : host_(std::move(other.host_)),
      source_(std::move(other.source_)),
      mark_(std::move(other.mark_)),
      pending_(std::exchange(other.pending_, false)),
      host_pinned_(other.host_pinned_) {}
QueuedReadback& QueuedReadback::operator=(QueuedReadback&& other) noexcept {
  if (this == &other) return *this;
  if (pending_ && mark_ && cudaSetDevice(mark_->device) == cudaSuccess) cudaEventSynchronize(mark_->done);
  host_ = std::move(other.host_);
  source_ = std::move(other.source_);
  mark_ = std::move(other.mark_);
  pending_ = std::exchange(other.pending_, false);
  host_pinned_ = other.host_pinned_;
  return *this;
}

void QueuedReadback::queue(const Tensor& src) {
  ZT_CHECK(src.defined(), "QueuedReadback: nothing to read back (an undefined tensor)");
  if (pending_) wait();  // the host buffer is about to be written again
  if (src.device().is_cpu()) {
    host_ = src.clone();
    host_pinned_ = false;
    source_ = Tensor();
    pending_ = true;
    return;
  }
  const int device = src.device().index;
  cuda::set_device(device);
  if (!host_pinned_ || host_.dtype() != src.dtype() || host_.shape() != src.shape()) {
    host_ = Tensor(Storage::allocate(src.nbytes(), Device::cpu(), /*pinned=*/true), 0, src.shape(), src.dtype());
    host_pinned_ = true;
  }
  if (!mark_ || mark_->device != device) {
    mark_ = std::make_unique<Mark>();
    mark_->device = device;
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&mark_->done, cudaEventDisableTiming));
  }
  host_.copy_from_async(src);
  ZT_CUDA_CHECK(cudaEventRecord(mark_->done, cuda::compute_stream()));
  source_ = src;
  pending_ = true;
}

void QueuedReadback::requeued() {
  ZT_CHECK(host_.defined(), "QueuedReadback: requeued() before any queue()");
  if (mark_) {
    cuda::set_device(mark_->device);
    ZT_CUDA_CHECK(cudaEventRecord(mark_->done, cuda::compute_stream()));
  }
  pending_ = true;
}

bool QueuedReadback::pending() const { return pending_; }

const Tensor& QueuedReadback::wait() {
  ZT_CHECK(host_.defined(), "QueuedReadback: wait() before any queue()");
  if (pending_ && host_pinned_) {  // the last queue() copied from a device (or a graph's launch did again)
    cuda::set_device(mark_->device);
    ZT_CUDA_CHECK(cudaEventSynchronize(mark_->done));
  }
  source_ = Tensor();
  pending_ = false;
  return host_;
}

}  // namespace zt
