#include "zt/core/storage.hpp"

#include <malloc.h>

#include <atomic>
#include <cstdlib>

#include "memory_backend.hpp"
#include "zt/core/error.hpp"

namespace zt {

namespace {
std::atomic<size_t> g_host_bytes{0};
std::atomic<size_t> g_host_peak{0};
std::atomic<size_t> g_device_bytes{0};
std::atomic<size_t> g_device_peak{0};

void raise_peak(std::atomic<size_t>& peak_counter, size_t now) {
  size_t peak = peak_counter.load();
  while (now > peak && !peak_counter.compare_exchange_weak(peak, now)) {
  }
}

void count_host_allocation(size_t nbytes) {
  raise_peak(g_host_peak, g_host_bytes.fetch_add(nbytes) + nbytes);
}

// Training allocates and frees the same activation sizes every step. Left to its defaults,
// glibc serves blocks past its mmap threshold with fresh mappings, so every step pays page
// faults and zero-filling for memory it just released; keeping freed memory in the heap lets
// the next step reuse it.
[[maybe_unused]] const bool g_heap_tuned = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();
}  // namespace

size_t host_bytes_allocated() { return g_host_bytes.load(); }
size_t host_bytes_peak() { return g_host_peak.load(); }
void reset_host_bytes_peak() { g_host_peak.store(g_host_bytes.load()); }
size_t device_bytes_allocated() { return g_device_bytes.load(); }
size_t device_bytes_peak() { return g_device_peak.load(); }
void reset_device_bytes_peak() { g_device_peak.store(g_device_bytes.load()); }

Storage::Storage(void* data, size_t nbytes, Device device, Deleter deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (deleter_) deleter_(data_);
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device, bool pinned, size_t alignment) {
  ZT_CHECK(alignment >= 64 && (alignment & (alignment - 1)) == 0, "Storage: alignment ", alignment,
           " is not a power of two of at least 64");
  const size_t rounded = (nbytes + alignment - 1) / alignment * alignment;
  if (device.is_cuda()) {
    void* ptr = rounded ? detail::cuda_allocate(rounded, device.index) : nullptr;
    raise_peak(g_device_peak, g_device_bytes.fetch_add(rounded) + rounded);
    const int index = device.index;
    return std::make_shared<Storage>(ptr, nbytes, device, [index, rounded](void* p) {
      g_device_bytes.fetch_sub(rounded);
      if (p) detail::cuda_release(p, index);
    });
  }
  void* ptr = nullptr;
  if (rounded) {
    ptr = pinned ? detail::pinned_allocate(rounded) : std::aligned_alloc(alignment, rounded);
    ZT_CHECK(ptr != nullptr, "out of host memory allocating ", nbytes, " bytes");
    if (reinterpret_cast<uintptr_t>(ptr) % alignment != 0) {  // pinned memory is page-aligned in practice
      pinned ? detail::pinned_release(ptr) : std::free(ptr);
      ZT_THROW("pinned host memory of ", nbytes, " bytes is not aligned to ", alignment, " bytes");
    }
  }
  count_host_allocation(rounded);
  return std::make_shared<Storage>(ptr, nbytes, device, [rounded, pinned](void* p) {
    g_host_bytes.fetch_sub(rounded);
    if (!p) return;
    if (pinned) detail::pinned_release(p);
    else std::free(p);
  });
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, Device device, Deleter deleter) {
  return std::make_shared<Storage>(data, nbytes, device, std::move(deleter));
}

}  // namespace zt
