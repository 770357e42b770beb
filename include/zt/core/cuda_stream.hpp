// The compute stream: where ops launch their kernels and where Storage allocates and frees CUDA
// memory (stream-ordered, cudaMallocAsync), so that a tensor's memory and the work that uses it
// are ordered without events. One per host thread, cudaStreamPerThread unless a guard sets
// another. Only for translation units built with the CUDA toolkit.
#pragma once

#include <cuda_runtime.h>

namespace zt::cuda {

// The calling thread's compute stream.
cudaStream_t compute_stream();

// Makes stream the calling thread's compute stream for the guard's lifetime. Memory freed while
// it is set returns to the pool in that stream's order: work still queued on the previous stream
// must be ordered before it (an event) by whoever switches.
class ComputeStreamGuard {
 public:
  explicit ComputeStreamGuard(cudaStream_t stream);
  ~ComputeStreamGuard();
  ComputeStreamGuard(const ComputeStreamGuard&) = delete;
  ComputeStreamGuard& operator=(const ComputeStreamGuard&) = delete;

 private:
  cudaStream_t previous_;
};

// Makes device the calling thread's current device (a no-op when it already is).
void set_device(int device);

// Waits for the calling thread's compute stream (tests, benchmarks and ops that return a host value).
void synchronize();

}  // namespace zt::cuda
