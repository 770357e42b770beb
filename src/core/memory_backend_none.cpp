// Memory primitives for a build without CUDA: host memory only.
#include <cstdlib>

#include "memory_backend.hpp"
#include "zt/core/device.hpp"
#include "zt/core/error.hpp"

namespace zt {

bool cuda_is_built() { return false; }
bool cuda_is_available() { return false; }
int cuda_device_count() { return 0; }

namespace detail {

void* cuda_allocate(size_t, int device) {
  ZT_THROW("cannot allocate on cuda:", device, ": this build of zt has no CUDA (configure with nvcc on PATH)");
}
void cuda_release(void*, int) {}
void* pinned_allocate(size_t nbytes) {
  void* ptr = std::aligned_alloc(4096, (nbytes + 4095) / 4096 * 4096);  // page-aligned, as cudaMallocHost's
  ZT_CHECK(ptr != nullptr, "out of host memory allocating ", nbytes, " bytes");
  return ptr;
}
void pinned_release(void* ptr) { std::free(ptr); }
void cuda_copy(void*, bool, const void*, bool, size_t) {
  ZT_THROW("cannot copy to or from a CUDA tensor: this build of zt has no CUDA");
}
void cuda_copy_async(void*, const void*, size_t) {
  ZT_THROW("cannot copy to or from a CUDA tensor: this build of zt has no CUDA");
}
void cuda_memset_zero(void*, size_t) { ZT_THROW("cannot fill a CUDA tensor: this build of zt has no CUDA"); }

}  // namespace detail
}  // namespace zt
