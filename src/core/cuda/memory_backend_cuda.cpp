// CUDA memory: stream-ordered allocation from the device's default pool (cudaMallocAsync),
// so freed blocks go back to the pool instead of to the driver.
#include <cuda_runtime.h>

#include "../memory_backend.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/device.hpp"

namespace zt {

bool cuda_is_built() { return true; }

bool cuda_is_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" status
    return false;
  }
  return count > 0;
}

namespace detail {

void* cuda_allocate(size_t nbytes, int device) {
  ZT_CUDA_CHECK(cudaSetDevice(device));
  void* ptr = nullptr;
  ZT_CUDA_CHECK(cudaMallocAsync(&ptr, nbytes, cudaStreamPerThread));
  return ptr;
}

void cuda_release(void* ptr, int device) {
  // A destructor path: report but never throw.
  if (cudaSetDevice(device) == cudaSuccess) cudaFreeAsync(ptr, cudaStreamPerThread);
}

void* pinned_allocate(size_t nbytes) {
  void* ptr = nullptr;
  ZT_CUDA_CHECK(cudaMallocHost(&ptr, nbytes));
  return ptr;
}

void pinned_release(void* ptr) { cudaFreeHost(ptr); }

void cuda_copy(void* dst, bool, const void* src, bool, size_t nbytes) {
  ZT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, cudaStreamPerThread));
  ZT_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
}

void cuda_memset_zero(void* ptr, size_t nbytes) {
  ZT_CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, cudaStreamPerThread));
}

}  // namespace detail
}  // namespace zt
