// The device-memory primitives that Storage and Tensor copies use. The CUDA build implements
// them with the runtime (stream-ordered cudaMallocAsync pools); the CPU-only build refuses CUDA.
#pragma once

#include <cstddef>

namespace zt::detail {

void* cuda_allocate(size_t nbytes, int device);
void cuda_release(void* ptr, int device);
void* pinned_allocate(size_t nbytes);
void pinned_release(void* ptr);
// Copies nbytes between any two of host and device memory; waits for the copy when either side
// is host memory (device-to-device copies are ordered on the compute stream).
void cuda_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes);
// Queues the copy on the compute stream and returns without waiting.
void cuda_copy_async(void* dst, const void* src, size_t nbytes);
void cuda_memset_zero(void* ptr, size_t nbytes);

}  // namespace zt::detail
