// The stream that parameter fetches copy on, so that copies from host memory to the GPU run
// while the compute stream works; events order the two streams. Where the compute device is the
// CPU (CPU ranks, or a build without CUDA), copies are done when copy() returns and every event
// is complete.
#pragma once

#include <memory>

#include "zt/core/tensor.hpp"

namespace zt::zero {

// A point in a FetchStream's order (a CUDA event); empty: already reached.
class FetchEvent {
 public:
  bool empty() const { return event_ == nullptr; }

 private:
  friend class FetchStream;
  std::shared_ptr<void> event_;
};

class FetchStream {
 public:
  explicit FetchStream(Device device);  // the compute device
  ~FetchStream();
  FetchStream(const FetchStream&) = delete;
  FetchStream& operator=(const FetchStream&) = delete;

  // (n) on the compute device, allocated in this stream's order, so that this stream (and what
  // is ordered after it) may write it at once.
  Tensor empty(int64_t n, DType dtype) const;
  // dst = src in this stream's order; both must stay alive until an event recorded after it is
  // reached.
  void copy(const Tensor& dst, const Tensor& src) const;
  FetchEvent record() const;
  void compute_waits(const FetchEvent& event) const;  // the compute stream, without blocking the host
  void host_waits(const FetchEvent& event) const;
  void synchronize() const;                           // the host waits for everything queued here
  void* handle() const { return stream_; }            // cudaStream_t, or nullptr on the CPU
  void* compute_handle() const;                       // the calling thread's compute stream

 private:
  Device device_;
  void* stream_ = nullptr;
};

}  // namespace zt::zero
