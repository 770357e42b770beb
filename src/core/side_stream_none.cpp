// SideStream in a build without CUDA: host tensors only, the work done in run() at once.
#include "zt/core/side_stream.hpp"

#include "zt/core/error.hpp"

namespace zt {

struct SideStream::Impl {};

SideStream::SideStream(Device device) : device_(device) {
  ZT_CHECK(device.is_cpu(), "SideStream on ", device.name(), ": this build of zt has no CUDA");
}

SideStream::~SideStream() = default;

void SideStream::fork() {}
void SideStream::run(const std::function<void()>& ops) { ops(); }
void SideStream::join() {}

}  // namespace zt
