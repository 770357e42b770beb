// QueuedReadback in a build without CUDA: every source is host memory, copied at queue().
#include "zt/core/queued_readback.hpp"

namespace zt {

struct QueuedReadback::Mark {};

QueuedReadback::QueuedReadback() = default;
QueuedReadback::~QueuedReadback() = default;
QueuedReadback::QueuedReadback(QueuedReadback&&) noexcept = default;
QueuedReadback& QueuedReadback::operator=(QueuedReadback&&) noexcept = default;

void QueuedReadback::queue(const Tensor& src) {
  ZT_CHECK(src.defined(), "QueuedReadback: nothing to read back (an undefined tensor)");
  ZT_CHECK(src.device().is_cpu(), "QueuedReadback of ", src.describe(), ": this build of zt has no CUDA");
  host_ = src.clone();
  pending_ = true;
}

void QueuedReadback::requeued() {
  ZT_CHECK(host_.defined(), "QueuedReadback: requeued() before any queue()");
  pending_ = true;
}

bool QueuedReadback::pending() const { return pending_; }

const Tensor& QueuedReadback::wait() {
  ZT_CHECK(host_.defined(), "QueuedReadback: wait() before any queue()");
  pending_ = false;
  return host_;
}

}  // namespace zt
