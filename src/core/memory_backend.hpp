// The device-memory primitives that Storage and Tensor copies use. The CUDA build implements
// them with the runtime (stream-ordered cudaMallocAsync pools); the CPU-only build refuses CUDA.
#pragma once

#include <cstddef>

namespace zt::detail {

void* cuda_allocate(size_t nbytes, int device);
void cuda_release(void* ptr, int device);
void* pinned_allocate(size_t nbytes);
void pinned_release(void* ptr);
// Copies nbytes between any two of host and device memory. Device-to-device copies, and
// host-to-device copies up to 16 MiB (through pinned staging buffers: the source may be reused
// at once), are queued on the compute stream without waiting; the others wait for the copy.
void cuda_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes);
// Queues the copy on the compute stream and returns without waiting.
void cuda_copy_async(void* dst, const void* src, size_t nbytes);
void cuda_memset_zero(void* ptr, size_t nbytes);

// While this thread captures a CUDA graph (zt/core/cuda_graph.hpp): the device allocations made
// since tracking began and not freed since, which would outlive the graph's launch.
struct CaptureAllocations {
  size_t count = 0, bytes = 0;
};
void track_capture_allocations(bool on);
CaptureAllocations capture_allocations();

}  // namespace zt::detail
