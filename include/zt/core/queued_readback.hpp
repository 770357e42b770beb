// A small device value that the host reads later without stalling the GPU: queue() copies it
// into pinned host memory on the calling thread's compute stream and marks the stream there;
// wait() blocks until the stream has passed the mark (by then, usually long ago) and returns the
// host copy. The loss of a forward is queued this way, and the gradients' sum of squares, so that
// the host never waits for the GPU between queuing a step's work and the next step's.
//
//   QueuedReadback r;
//   r.queue(losses);               // losses (n) on cuda:0; returns at once
//   ... queue more work ...
//   const Tensor& host = r.wait(); // (n) on the host: the values losses had at queue()
//
// On the host device queue() copies at once. A readback holds its source until wait() or the next
// queue(), so the source's memory is not reused before the copy has run; destroying or assigning
// over a pending readback waits for its copy. The next queue() of the same shape writes into the
// tensor that wait() returned.
#pragma once

#include <memory>

#include "zt/core/tensor.hpp"

namespace zt {

class QueuedReadback {
 public:
  QueuedReadback();
  ~QueuedReadback();
  QueuedReadback(QueuedReadback&&) noexcept;
  QueuedReadback& operator=(QueuedReadback&&) noexcept;

  void queue(const Tensor& src);  // any device; a queued value not yet waited for is dropped
  bool pending() const;           // queued and not waited for
  const Tensor& wait();           // the host copy of the last queue() (throws if none was queued)
  // The copy of the last queue() was queued again, by a launch of the CUDA graph it was captured
  // into: marks the stream after it (the launch), and the readback is pending again.
  void requeued();

 private:
  struct Mark;  // the stream's point after the copy (a CUDA event); none on the host
  Tensor host_, source_;
  std::unique_ptr<Mark> mark_;
  bool pending_ = false;
  bool host_pinned_ = false;  // host_ is the pinned buffer that copies from a device go into
};

}  // namespace zt
