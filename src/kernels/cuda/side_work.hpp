// Work queued beside the compute stream, for an op whose parts do not depend on each other (the
// weight gradient's product beside the input gradient's): the side stream starts after what the
// compute stream has queued so far, and the compute stream waits for the side work at join().
// One non-blocking side stream per host thread and device, created on first use.
#pragma once

#include <cuda_runtime.h>

#include "zt/core/cuda_stream.hpp"

namespace zt::cuda {

class SideWork {
 public:
  // enabled false: run() queues on the compute stream itself and join() does nothing.
  explicit SideWork(bool enabled);
  ~SideWork();  // joins when join() was not called (errors ignored: a destructor does not throw)
  SideWork(const SideWork&) = delete;
  SideWork& operator=(const SideWork&) = delete;

  // Calls queue() with the side stream as the calling thread's compute stream: its kernels, and
  // the Scratch memory it allocates and frees, are ordered on the side stream.
  template <class F>
  void run(F&& queue) {
    if (!side_) {
      queue();
      return;
    }
    ComputeStreamGuard guard(side_);
    queue();
  }

  // The compute stream waits for everything run() queued.
  void join();

 private:
  cudaStream_t side_ = nullptr;
  cudaEvent_t done_ = nullptr;
};

}  // namespace zt::cuda
