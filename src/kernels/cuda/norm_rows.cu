// LayerNorm and RMSNorm forwards, a warp per row in 16-byte chunks (norm_rows.hpp; the backwards
// are in norm_rows_backward.cu). Against the general kernels of norm.cu (two-byte loads) these
// read each row with 16-byte loads and keep it in registers between the statistics and the output.
//
// Template K: chunks per lane (a row has at most 32 K chunks; chunks past the row are masked).
#include <type_traits>

#include "norm_chunks.cuh"
#include "norm_rows.hpp"

namespace zt::cuda {

namespace {

using namespace norm_chunks;

constexpr int kWarps = 8;  // warps per block, a row each at a time

template <class T, int K>
__global__ void __launch_bounds__(32 * kWarps) layernorm_forward_rows_kernel(T* out, float* mean, float* rstd,
                                                                              const T* inp, const T* weight,
                                                                              const T* bias, int64_t n, int chunks,
                                                                              float eps, const T* residual, T* sum) {
  constexpr int V = Chunk16<T>::n;
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const int64_t c = int64_t(chunks) * V;
  float v[K][V];
  float s = 0;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = lane + 32 * i;
    if (k < chunks) {
      const Chunk16<T> ch = load_row_chunk(inp, residual, sum, row * c, k);
#pragma unroll
      for (int e = 0; e < V; ++e) v[i][e] = to_float(ch.v[e]), s += v[i][e];
    }
  }
  const float m = warp_sum(s) / float(c);
  float var = 0;
#pragma unroll
  for (int i = 0; i < K; ++i)
    if (lane + 32 * i < chunks) {
#pragma unroll
      for (int e = 0; e < V; ++e) var += (v[i][e] - m) * (v[i][e] - m);
    }
  const float r = rsqrtf(warp_sum(var) / float(c) + eps);
  T* o = out + row * c;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = lane + 32 * i;
    if (k >= chunks) continue;
    const Chunk16<T> w = load_chunk(weight, k);
    Chunk16<T> b, y;
    if (bias) b = load_chunk(bias, k);
#pragma unroll
    for (int e = 0; e < V; ++e)
      y.v[e] = from_float<T>((v[i][e] - m) * r * to_float(w.v[e]) + (bias ? to_float(b.v[e]) : 0.0f));
    reinterpret_cast<uint4*>(o)[k] = y.raw;
  }
  if (lane == 0) mean[row] = m, rstd[row] = r;
}

template <class T, int K>
__global__ void __launch_bounds__(32 * kWarps) rmsnorm_forward_rows_kernel(T* out, float* rstd, const T* inp,
                                                                            const T* weight, int64_t n, int chunks,
                                                                            float eps, const T* residual, T* sum) {
  constexpr int V = Chunk16<T>::n;
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const int64_t c = int64_t(chunks) * V;
  float v[K][V];
  float ms = 0;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = lane + 32 * i;
    if (k < chunks) {
      const Chunk16<T> ch = load_row_chunk(inp, residual, sum, row * c, k);
#pragma unroll
      for (int e = 0; e < V; ++e) v[i][e] = to_float(ch.v[e]), ms += v[i][e] * v[i][e];
    }
  }
  const float r = rsqrtf(warp_sum(ms) / float(c) + eps);
  T* o = out + row * c;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = lane + 32 * i;
    if (k >= chunks) continue;
    const Chunk16<T> w = load_chunk(weight, k);
    Chunk16<T> y;
    // As the reference: normalize in the storage type, then multiply by the weight.
#pragma unroll
    for (int e = 0; e < V; ++e) y.v[e] = from_float<T>(to_float(w.v[e]) * to_float(from_float<T>(v[i][e] * r)));
    reinterpret_cast<uint4*>(o)[k] = y.raw;
  }
  if (lane == 0) rstd[row] = r;
}

// The chunks of a row and the chunks per lane, or 0 when no vectorized kernel covers the row.
template <class T>
int chunks_per_lane(int64_t c, int& chunks) {
  constexpr int V = Chunk16<T>::n;
  if (c % V != 0) return 0;
  chunks = int(c / V);
  const int needed = (chunks + 31) / 32;
  for (int k : {1, 2, 3, 4, 6, 8})
    if (k >= needed) return k;
  return 0;
}

// Calls f(std::integral_constant<int, K>) for the K that chunks_per_lane chose.
template <class F>
void with_chunks(int k, F&& f) {
  switch (k) {
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, 4>()); break;
    case 6: f(std::integral_constant<int, 6>()); break;
    default: f(std::integral_constant<int, 8>()); break;
  }
}

unsigned forward_blocks(int64_t n) { return unsigned((n + kWarps - 1) / kWarps); }

}  // namespace

template <class T>
bool layernorm_forward_rows(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias,
                            int64_t n, int64_t c, double eps, const T* residual, T* sum) {
  int chunks = 0;
  const int k = chunks_per_lane<T>(c, chunks);
  if (k == 0 || !aligned16(out) || !aligned16(inp) || !aligned16(weight) || !aligned16(bias) ||
      !aligned16(residual) || !aligned16(sum))
    return false;
  with_chunks(k, [&](auto kc) {
    layernorm_forward_rows_kernel<T, decltype(kc)::value><<<forward_blocks(n), 32 * kWarps, 0, compute_stream()>>>(
        out, mean, rstd, inp, weight, bias, n, chunks, float(eps), residual, sum);
  });
  ZT_CUDA_CHECK_LAUNCH("layernorm_forward_rows_kernel");
  return true;
}

template <class T>
bool rmsnorm_forward_rows(T* out, float* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps,
                          const T* residual, T* sum) {
  int chunks = 0;
  const int k = chunks_per_lane<T>(c, chunks);
  if (k == 0 || !aligned16(out) || !aligned16(inp) || !aligned16(weight) || !aligned16(residual) || !aligned16(sum))
    return false;
  with_chunks(k, [&](auto kc) {
    rmsnorm_forward_rows_kernel<T, decltype(kc)::value><<<forward_blocks(n), 32 * kWarps, 0, compute_stream()>>>(
        out, rstd, inp, weight, n, chunks, float(eps), residual, sum);
  });
  ZT_CUDA_CHECK_LAUNCH("rmsnorm_forward_rows_kernel");
  return true;
}

#define ZT_INSTANTIATE(T)                                                                                        \
  template bool layernorm_forward_rows<T>(T*, float*, float*, const T*, const T*, const T*, int64_t, int64_t,    \
                                          double, const T*, T*);                                                 \
  template bool rmsnorm_forward_rows<T>(T*, float*, const T*, const T*, int64_t, int64_t, double, const T*, T*);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
