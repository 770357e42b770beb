#include "common.cuh"

#include <algorithm>

namespace zt::cuda {

int multiprocessor_count() {
  int device = 0, count = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  ZT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

int grid_size(int64_t n, int threads) {
  static thread_local int sms = 0;
  if (sms == 0) sms = multiprocessor_count();
  const int64_t needed = (n + threads - 1) / threads;
  return int(std::max<int64_t>(1, std::min<int64_t>(needed, int64_t(sms) * 16)));
}

Scratch::Scratch(size_t nbytes) {
  if (nbytes) ZT_CUDA_CHECK(cudaMallocAsync(&ptr_, nbytes, compute_stream()));
}

Scratch::~Scratch() {
  if (ptr_) cudaFreeAsync(ptr_, compute_stream());
}

}  // namespace zt::cuda
