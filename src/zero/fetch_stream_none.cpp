// FetchStream without CUDA: the compute device is the CPU, copies are memcpy.
#include "fetch_stream.hpp"

namespace zt::zero {

FetchStream::FetchStream(Device device) : device_(device) {
  ZT_CHECK(device.is_cpu(), "parameter fetches to ", device.name(), ": this build of zt has no CUDA");
}
FetchStream::~FetchStream() = default;
Tensor FetchStream::empty(int64_t n, DType dtype) const { return Tensor::empty({n}, dtype, device_); }
void FetchStream::copy(const Tensor& dst, const Tensor& src) const { dst.copy_from(src); }
FetchEvent FetchStream::record() const { return {}; }
void FetchStream::compute_waits(const FetchEvent&) const {}
void FetchStream::host_waits(const FetchEvent&) const {}
void FetchStream::synchronize() const {}
void* FetchStream::compute_handle() const { return nullptr; }

}  // namespace zt::zero
