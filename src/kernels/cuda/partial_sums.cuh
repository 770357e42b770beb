// The last step of a column reduction done in blocks: partial (blocks, arrays, C) holds each
// block's column sums of `arrays` arrays; sum_partials adds them over the blocks into dst_a (C)
// (dst_a += the sum; a null dst_a is skipped). 32 columns a block of (32, kPartialPhases)
// threads: each phase adds every kPartialPhases-th block's row, then the phases are combined in a
// fixed order, so the result is the same from run to run and no thread walks all the blocks.
#pragma once

#include "common.cuh"

namespace zt::cuda {

constexpr int kPartialPhases = 16;

template <class T>
__global__ void sum_partials_kernel(T* dst0, T* dst1, const float* partial, int blocks, int arrays, int64_t c) {
  __shared__ float phase_sums[kPartialPhases][33];
  const int a = blockIdx.y;
  const int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0;
  if (j < c)
#pragma unroll 4
    for (int b = threadIdx.y; b < blocks; b += kPartialPhases) s += partial[(int64_t(b) * arrays + a) * c + j];
  phase_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  T* dst = a == 0 ? dst0 : dst1;
  if (threadIdx.y != 0 || j >= c || !dst) return;
  float total = 0;
#pragma unroll
  for (int y = 0; y < kPartialPhases; ++y) total += phase_sums[y][threadIdx.x];
  dst[j] = from_float<T>(to_float(dst[j]) + total);
}

template <class T>
void sum_partials(T* dst0, T* dst1, const float* partial, int blocks, int arrays, int64_t c) {
  const dim3 grid(unsigned((c + 31) / 32), unsigned(arrays));
  sum_partials_kernel<<<grid, dim3(32, kPartialPhases), 0, compute_stream()>>>(dst0, dst1, partial, blocks, arrays, c);
  ZT_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

}  // namespace zt::cuda
