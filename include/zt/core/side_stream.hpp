// Ops queued beside the calling thread's compute stream and ordered with it by events: work that
// needs what the compute stream has written so far but that the compute stream does not need
// until later (the gradients' sum of squares, slice by slice, while the backward's products go
// on). On the host device run() calls its function at once and fork() and join() do nothing, so
// the same code runs on CPU ranks.
//
//   SideStream side(device);
//   side.fork();                                // later side work starts after the compute stream's work so far
//   side.run([&] { ops::sum_squares_into(s, g); });  // the ops inside launch on the side stream
//   side.join();                                // the compute stream waits for the side work
//
// Inside run() the side stream is the calling thread's compute stream: memory the ops allocate
// and free there is ordered on it. Tensors made outside and used inside must outlive the work
// (their owner keeps them until after join()). A CUDA graph's capture takes the side work in
// as a branch, which join() brings back before the capture ends.
#pragma once

#include <functional>
#include <memory>

#include "zt/core/device.hpp"

namespace zt {

class SideStream {
 public:
  explicit SideStream(Device device);
  ~SideStream();  // the compute stream waits for the side work not yet joined (never throws)
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  void fork();
  void run(const std::function<void()>& ops);
  void join();

 private:
  struct Impl;
  Device device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zt
