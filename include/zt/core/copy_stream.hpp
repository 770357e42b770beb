// A stream for host<->device copies that overlap compute, ordered by events (optimizer offload:
// gradients down as their buckets finish, updated parameters up tile by tile while the next tile
// steps; the gradient buffer cleared during the next forward). On a CUDA device the copies run
// on a stream of their own; on the host they are plain memory copies that finish before copy()
// returns, so the same code runs on CPU ranks.
//
//   CopyStream s(device);
//   s.after_compute();                       // later copies wait for the compute stream's work so far
//   auto t = s.copy(host_tile, device_part); // async; both tensors are kept alive until it is done
//   s.wait(t);                               // the host waits for it (and every earlier copy)
//   s.before_compute();                      // the compute stream waits for every copy issued
#pragma once

#include <cstdint>
#include <memory>

#include "zt/core/tensor.hpp"

namespace zt {

class CopyStream {
 public:
  using Ticket = uint64_t;  // copies are numbered from 1 in issue order; 0 is "none"

  explicit CopyStream(Device device);
  ~CopyStream();  // waits for the copies in flight (never throws)
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;

  // Copies issued after this call start only once the work queued so far on the calling thread's
  // compute stream has finished (what a reduction or a kernel wrote is then complete).
  void after_compute();
  // Copies src into dst (same dtype and numel). On a CUDA device one side must be host memory
  // (pinned for the copy to be asynchronous). Copies run in issue order.
  Ticket copy(const Tensor& dst, const Tensor& src);
  // Sets dst's bytes to zero, in issue order with the copies (on the host device, at once): a
  // buffer cleared off the compute stream's path, for the compute stream to wait on later.
  Ticket fill_zero(const Tensor& dst);
  // The host waits until copy t and every earlier one finished; t = 0 or a finished copy returns at once.
  void wait(Ticket t);
  void synchronize();  // waits for every copy issued
  // The calling thread's compute stream waits (on the device, the host does not) for every copy issued.
  void before_compute();
  Ticket last() const { return issued_; }
  bool asynchronous() const { return device_.is_cuda(); }

 private:
  struct Impl;
  Device device_;
  Ticket issued_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zt
