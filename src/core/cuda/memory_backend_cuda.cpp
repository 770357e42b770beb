// CUDA memory: stream-ordered allocation from the device's default pool (cudaMallocAsync) on the
// compute stream (zt/core/cuda_stream.hpp), so freed blocks go back to the pool instead of to the
// driver, in the order of the kernels that use them.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "../memory_backend.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_graph.hpp"
#include "zt/core/cuda_stream.hpp"
#include "zt/core/device.hpp"

namespace zt {

bool cuda_is_built() { return true; }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" status
    return 0;
  }
  return count;
}

bool cuda_is_available() { return cuda_device_count() > 0; }

namespace detail {

namespace {

// The default pool's release threshold is 0: every stream synchronization would hand freed
// blocks back to the driver, and the next step would pay cudaMalloc's cost again. Keep them.
void keep_pool_memory(int device) {
  static bool kept[64] = {};
  if (device < 0 || device >= 64 || kept[device]) return;
  cudaMemPool_t pool;
  ZT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t threshold = UINT64_MAX;
  ZT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  kept[device] = true;
}

// Host-to-device copies up to kStagedBytes go through pinned staging buffers, so that they are
// truly asynchronous: the source is copied into the buffer at once (the caller may then free or
// reuse it) and the device copy is queued on the compute stream behind the kernels before it,
// with no wait for the GPU. A copy from pageable memory would otherwise have the host wait for
// everything queued before it (the optimizer step, a whole forward) each time a batch goes up.
// A ring of kStagingSlots buffers, each reused once the copy that last used it has finished.
constexpr size_t kStagedBytes = size_t(16) << 20;
constexpr int kStagingSlots = 4;

struct StagingSlot {
  void* buffer = nullptr;
  size_t capacity = 0;
  cudaEvent_t done = nullptr;  // recorded after the device copy that last read the buffer
};

class StagingRing {
 public:
  void copy_to_device(void* dst, const void* src, size_t nbytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    StagingSlot& s = slots_[size_t(next_)];
    next_ = (next_ + 1) % kStagingSlots;
    if (s.done) ZT_CUDA_CHECK(cudaEventSynchronize(s.done));
    else ZT_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    if (s.capacity < nbytes) {
      if (s.buffer) ZT_CUDA_CHECK(cudaFreeHost(s.buffer));
      s.buffer = nullptr;
      s.capacity = 0;
      ZT_CUDA_CHECK(cudaHostAlloc(&s.buffer, nbytes, cudaHostAllocPortable));
      s.capacity = nbytes;
    }
    std::memcpy(s.buffer, src, nbytes);
    ZT_CUDA_CHECK(cudaMemcpyAsync(dst, s.buffer, nbytes, cudaMemcpyHostToDevice, cuda::compute_stream()));
    ZT_CUDA_CHECK(cudaEventRecord(s.done, cuda::compute_stream()));
  }

 private:
  std::mutex mutex_;
  std::array<StagingSlot, kStagingSlots> slots_{};
  int next_ = 0;
};

// The current device's ring (its events belong to that device, as the streams they mark).
StagingRing& staging_ring() {
  static std::mutex mutex;
  static auto* rings = new std::map<int, std::unique_ptr<StagingRing>>;  // live with the process
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  auto& ring = (*rings)[device];
  if (!ring) ring = std::make_unique<StagingRing>();
  return *ring;
}

// The allocations made during this thread's graph capture and not freed since (pointer, bytes).
thread_local std::unordered_map<void*, size_t>* t_capture_allocations = nullptr;

}  // namespace

void track_capture_allocations(bool on) {
  delete t_capture_allocations;
  t_capture_allocations = on ? new std::unordered_map<void*, size_t>() : nullptr;
}

CaptureAllocations capture_allocations() {
  CaptureAllocations a;
  if (!t_capture_allocations) return a;
  for (const auto& [ptr, bytes] : *t_capture_allocations) ++a.count, a.bytes += bytes;
  return a;
}

void* cuda_allocate(size_t nbytes, int device) {
  cuda::set_device(device);
  keep_pool_memory(device);
  void* ptr = nullptr;
  ZT_CUDA_CHECK(cudaMallocAsync(&ptr, nbytes, cuda::compute_stream()));
  if (t_capture_allocations) (*t_capture_allocations)[ptr] = nbytes;
  return ptr;
}

void cuda_release(void* ptr, int device) {
  if (t_capture_allocations) t_capture_allocations->erase(ptr);
  // A destructor path: report but never throw.
  if (cudaSetDevice(device) == cudaSuccess) cudaFreeAsync(ptr, cuda::compute_stream());
}

void* pinned_allocate(size_t nbytes) {
  void* ptr = nullptr;
  ZT_CUDA_CHECK(cudaMallocHost(&ptr, nbytes));
  return ptr;
}

void pinned_release(void* ptr) { cudaFreeHost(ptr); }

void cuda_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes) {
  // A graph would replay the staging buffer's later contents, or the host could not wait.
  ZT_CHECK((dst_on_device && src_on_device) || !capturing_graph(), "a copy of ", nbytes, " bytes ",
           src_on_device ? "from the device to the host" : "from the host to the device",
           " inside a CUDA graph's capture: the captured work must read its inputs from device memory");
  if (dst_on_device && !src_on_device && nbytes <= kStagedBytes) return staging_ring().copy_to_device(dst, src, nbytes);
  ZT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, cuda::compute_stream()));
  // A copy between two device buffers is ordered with the kernels on the stream: no wait.
  if (!(dst_on_device && src_on_device)) ZT_CUDA_CHECK(cudaStreamSynchronize(cuda::compute_stream()));
}

void cuda_copy_async(void* dst, const void* src, size_t nbytes) {
  ZT_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, cuda::compute_stream()));
}

void cuda_memset_zero(void* ptr, size_t nbytes) {
  ZT_CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, cuda::compute_stream()));
}

}  // namespace detail
}  // namespace zt
