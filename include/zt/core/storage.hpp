// Ref-counted bytes on one device. Tensors are views into a Storage, so that a flat buffer
// (the ZeRO layer's) can own the memory that many parameters look into.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "zt/core/device.hpp"

namespace zt {

class Storage {
 public:
  using Deleter = std::function<void(void*)>;

  // Allocates nbytes on device: host memory aligned to `alignment` bytes (a power of two, at least
  // 64; 4096 for O_DIRECT I/O), or stream-ordered CUDA memory. pinned asks for page-locked host
  // memory (ignored without CUDA).
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device, bool pinned = false, size_t alignment = 64);
  // Wraps memory owned elsewhere; deleter (may be empty) runs when the last view goes.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, Device device, Deleter deleter);

  Storage(void* data, size_t nbytes, Device device, Deleter deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Deleter deleter_;
};

// Bytes of host memory currently held by Storage::allocate (for the memory reports).
size_t host_bytes_allocated();
size_t host_bytes_peak();  // the most held at once since the start or the last reset
void reset_host_bytes_peak();
// Bytes of CUDA memory currently held by Storage::allocate on all devices, and the most held at
// once since the start or the last reset (what torch.cuda.max_memory_allocated reports).
size_t device_bytes_allocated();
size_t device_bytes_peak();
void reset_device_bytes_peak();

}  // namespace zt
