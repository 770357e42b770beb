// Softmax cross-entropy over the vocabulary fused with its backward: a block per row reads the
// row's logits in their storage type (never an f32 copy), keeps a running max and sum per thread
// (one exp per element), and writes dlogits in a second pass, which the L2 mostly serves.
#include <cuda_bf16.h>

#include "common.cuh"

namespace zt::cuda {

namespace {

template <class T>
union Vec {  // 16 bytes of T
  static constexpr int n = 16 / sizeof(T);
  uint4 raw;
  T v[n];
};

// Calls fn(j, value) for every element of row x (V) that this thread owns: a scalar head up to the
// first 16-byte boundary, 16-byte vectors, a scalar tail.
template <class T, class Fn>
__device__ __forceinline__ void for_each_owned(const T* x, int64_t v, Fn&& fn) {
  constexpr int kVec = Vec<T>::n;
  const int64_t misalign = int64_t(reinterpret_cast<uintptr_t>(x) % 16) / int64_t(sizeof(T));
  int64_t head = misalign ? kVec - misalign : 0;
  head = head < v ? head : v;
  const int64_t body = (v - head) / kVec;
  const int64_t tail_start = head + body * kVec;
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) fn(j, to_float(x[j]));
  const Vec<T>* xv = reinterpret_cast<const Vec<T>*>(x + head);
  for (int64_t i = threadIdx.x; i < body; i += blockDim.x) {
    const Vec<T> chunk = xv[i];
#pragma unroll
    for (int k = 0; k < kVec; ++k) fn(head + i * kVec + k, to_float(chunk.v[k]));
  }
  for (int64_t j = tail_start + threadIdx.x; j < v; j += blockDim.x) fn(j, to_float(x[j]));
}

template <class T>
__global__ void cross_entropy_kernel(float* losses, T* dlogits, const T* logits, const int32_t* targets,
                                     int* counted, int64_t v, float dloss) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * v;
  T* dx = dlogits ? dlogits + row * v : nullptr;
  const int32_t target = targets[row];
  if (target == ops::kIgnoreIndex) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (dx)
      for (int64_t j = threadIdx.x; j < v; j += blockDim.x) dx[j] = from_float<T>(0.0f);
    return;
  }
  const bool valid = target >= 0 && target < v;
  // Read before any thread may overwrite it (dlogits may alias logits); the reductions below
  // hold barriers that order this read before the second pass.
  const float x_target = valid ? to_float(x[target]) : NAN;
  float m = -INFINITY, s = 0.0f;
  for_each_owned(x, v, [&](int64_t, float value) {
    if (value > m) {
      s = s * __expf(m - value) + 1.0f;
      m = value;
    } else {
      s += __expf(value - m);
    }
  });
  const float row_max = block_max(m, shared);
  const float sum = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - row_max), shared);
  if (threadIdx.x == 0) {
    losses[row] = valid ? logf(sum) + row_max - x_target : NAN;
    atomicAdd(counted, 1);
  }
  if (!dx) return;
  const float scale = valid ? dloss / sum : NAN;
  if (reinterpret_cast<uintptr_t>(dx) % 16 == reinterpret_cast<uintptr_t>(x) % 16) {
    // Same alignment (in place, or a twin buffer): the writes go out as 16-byte vectors too.
    constexpr int kVec = Vec<T>::n;
    const int64_t misalign = int64_t(reinterpret_cast<uintptr_t>(x) % 16) / int64_t(sizeof(T));
    int64_t head = misalign ? kVec - misalign : 0;
    head = head < v ? head : v;
    const int64_t body = (v - head) / kVec;
    for (int64_t j = threadIdx.x; j < head; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
    // The second read is the row's last (evict first); dlogits is not read again here (stream).
    const uint4* xv = reinterpret_cast<const uint4*>(x + head);
    uint4* dv = reinterpret_cast<uint4*>(dx + head);
    for (int64_t i = threadIdx.x; i < body; i += blockDim.x) {
      Vec<T> chunk, out;
      chunk.raw = __ldcs(xv + i);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const int64_t j = head + i * kVec + k;
        out.v[k] = from_float<T>(__expf(to_float(chunk.v[k]) - row_max) * scale - (j == target ? dloss : 0.0f));
      }
      __stcs(dv + i, out.raw);
    }
    for (int64_t j = head + body * kVec + threadIdx.x; j < v; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
  } else {
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
  }
}

}  // namespace

template <class T>
int64_t cross_entropy(float* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                      double dloss) {
  if (n == 0) return 0;
  Scratch counted(sizeof(int));
  ZT_CUDA_CHECK(cudaMemsetAsync(counted.as<int>(), 0, sizeof(int), compute_stream()));
  // Large blocks: fewer rows in flight, so that a row read by the first pass is still in the L2
  // for the second (at 2 blocks of 1024 per SM, 264 rows of 100 KB for GPT-2's vocabulary).
  const int threads = v >= 8192 ? 1024 : (v >= 1024 ? 256 : 64);
  cross_entropy_kernel<<<unsigned(n), threads, 0, compute_stream()>>>(losses, dlogits, logits, targets,
                                                                      counted.as<int>(), v, float(dloss));
  ZT_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
  int host = 0;
  ZT_CUDA_CHECK(cudaMemcpyAsync(&host, counted.as<int>(), sizeof(int), cudaMemcpyDeviceToHost, compute_stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
  return host;
}

template int64_t cross_entropy<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, double);
template int64_t cross_entropy<bf16>(float*, bf16*, const bf16*, const int32_t*, int64_t, int64_t, double);

}  // namespace zt::cuda
