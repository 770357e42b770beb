#include "zt/core/cuda_stream.hpp"

#include "zt/core/cuda_check.hpp"

namespace zt::cuda {

namespace {
thread_local cudaStream_t t_stream = cudaStreamPerThread;
}  // namespace

cudaStream_t compute_stream() { return t_stream; }

ComputeStreamGuard::ComputeStreamGuard(cudaStream_t stream) : previous_(t_stream) { t_stream = stream; }
ComputeStreamGuard::~ComputeStreamGuard() { t_stream = previous_; }

void set_device(int device) {
  int current = -1;
  ZT_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) ZT_CUDA_CHECK(cudaSetDevice(device));
}

void synchronize() { ZT_CUDA_CHECK(cudaStreamSynchronize(t_stream)); }

}  // namespace zt::cuda
