#include "zt/core/storage.hpp"

#include <atomic>
#include <cstdlib>

#include "memory_backend.hpp"
#include "zt/core/error.hpp"

namespace zt {

namespace {
std::atomic<size_t> g_host_bytes{0};
std::atomic<size_t> g_host_peak{0};

void count_host_allocation(size_t nbytes) {
  const size_t now = g_host_bytes.fetch_add(nbytes) + nbytes;
  size_t peak = g_host_peak.load();
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

size_t host_bytes_allocated() { return g_host_bytes.load(); }
size_t host_bytes_peak() { return g_host_peak.load(); }

Storage::Storage(void* data, size_t nbytes, Device device, Deleter deleter)
    : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (deleter_) deleter_(data_);
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device, bool pinned) {
  const size_t rounded = (nbytes + 63) / 64 * 64;
  if (device.is_cuda()) {
    void* ptr = rounded ? detail::cuda_allocate(rounded, device.index) : nullptr;
    const int index = device.index;
    return std::make_shared<Storage>(ptr, nbytes, device, [index](void* p) {
      if (p) detail::cuda_release(p, index);
    });
  }
  void* ptr = nullptr;
  if (rounded) {
    ptr = pinned ? detail::pinned_allocate(rounded) : std::aligned_alloc(64, rounded);
    ZT_CHECK(ptr != nullptr, "out of host memory allocating ", nbytes, " bytes");
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
