// CopyStream in a build without CUDA: host memory only, every copy done before copy() returns.
#include "zt/core/copy_stream.hpp"

namespace zt {

struct CopyStream::Impl {};

CopyStream::CopyStream(Device device) : device_(device) {
  ZT_CHECK(device.is_cpu(), "CopyStream on ", device.name(), ": this build of zt has no CUDA");
}

CopyStream::~CopyStream() = default;

void CopyStream::after_compute() {}

CopyStream::Ticket CopyStream::copy(const Tensor& dst, const Tensor& src) {
  dst.copy_from(src);
  return ++issued_;
}

CopyStream::Ticket CopyStream::fill_zero(const Tensor& dst) {
  dst.zero_();
  return ++issued_;
}

void CopyStream::wait(Ticket) {}
void CopyStream::synchronize() {}
void CopyStream::before_compute() {}

}  // namespace zt
