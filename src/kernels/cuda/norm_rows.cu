// LayerNorm and RMSNorm, a warp per row in 16-byte chunks (norm_rows.hpp). Against the general
// kernels of norm.cu (two-byte loads, parameter-gradient sums through shared memory for every
// element) these read each row with 16-byte loads and keep the parameter-gradient sums of the
// lane's columns in registers across all the rows the warp visits; a block then adds its warps'
// sums in a fixed order, and a last kernel sums the blocks' partials column by column, so the
// result is the same from run to run.
//
// Template K: chunks per lane (a row has at most 32 K chunks; chunks past the row are masked).
#include <algorithm>
#include <type_traits>

#include "common.cuh"
#include "norm_rows.hpp"

namespace zt::cuda {

namespace {

constexpr int kWarps = 8;            // warps per block, a row each at a time
constexpr int kMaxAccumulators = 64; // register sums per lane for the parameter gradients

template <class T>
__device__ __forceinline__ Chunk16<T> load_chunk(const T* row, int k) {
  Chunk16<T> c;
  c.raw = reinterpret_cast<const uint4*>(row)[k];
  return c;
}

// Chunk k of the row starting at element `start` of inp; with a residual, of inp + residual
// instead, rounded to T as ops::add rounds it, and written to sum (which may be inp or residual:
// each chunk is read before it is written, by the same lane).
template <class T>
__device__ __forceinline__ Chunk16<T> load_row_chunk(const T* inp, const T* residual, T* sum, int64_t start, int k) {
  Chunk16<T> ch = load_chunk(inp + start, k);
  if (!residual) return ch;
  const Chunk16<T> r = load_chunk(residual + start, k);
#pragma unroll
  for (int e = 0; e < Chunk16<T>::n; ++e) ch.v[e] = from_float<T>(to_float(ch.v[e]) + to_float(r.v[e]));
  reinterpret_cast<uint4*>(sum + start)[k] = ch.raw;
  return ch;
}

// Chunk k of dinp's row as computed (f32), plus the same chunk of dinp_add when there is one,
// rounded to T.
template <class T>
__device__ __forceinline__ Chunk16<T> plus_chunk(const float (&dx)[Chunk16<T>::n], const T* dinp_add, int64_t start,
                                                 int k) {
  Chunk16<T> out;
  if (dinp_add) {
    const Chunk16<T> a = load_chunk(dinp_add + start, k);
#pragma unroll
    for (int e = 0; e < Chunk16<T>::n; ++e) out.v[e] = from_float<T>(dx[e] + to_float(a.v[e]));
  } else {
#pragma unroll
    for (int e = 0; e < Chunk16<T>::n; ++e) out.v[e] = from_float<T>(dx[e]);
  }
  return out;
}

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

// Adds each warp's register sums (A arrays of K chunks per lane) into sums (A, C) in warp order,
// then writes the block's row of partial (gridDim.x, A, C). sums starts zeroed.
template <int A, int K, int V>
__device__ __forceinline__ void block_partials(float* partial, float* sums, const float (&acc)[A][K][V], int chunks) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = int64_t(chunks) * V;
  for (int w = 0; w < kWarps; ++w) {
    if (warp == w) {
#pragma unroll
      for (int a = 0; a < A; ++a)
#pragma unroll
        for (int i = 0; i < K; ++i) {
          const int k = lane + 32 * i;
          if (k >= chunks) continue;
#pragma unroll
          for (int e = 0; e < V; ++e) sums[a * c + k * V + e] += acc[a][i][e];
        }
    }
    __syncthreads();
  }
  float* out = partial + int64_t(blockIdx.x) * A * c;
  for (int64_t j = threadIdx.x; j < A * c; j += blockDim.x) out[j] = sums[j];
}

// partial (gridDim.x, 2, C): per block, the sums of dy * xhat (dweight) and dy (dbias) over its rows.
template <class T, int K>
__global__ void __launch_bounds__(32 * kWarps) layernorm_backward_rows_kernel(T* dinp, float* partial, const T* dout,
                                                                               const T* inp, const T* weight,
                                                                               const float* mean, const float* rstd,
                                                                               int64_t n, int chunks,
                                                                               const T* dinp_add) {
  constexpr int V = Chunk16<T>::n;
  extern __shared__ float sums[];  // (2, C)
  const int64_t c = int64_t(chunks) * V;
  for (int64_t j = threadIdx.x; j < 2 * c; j += blockDim.x) sums[j] = 0.0f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[2][K][V] = {};
  for (int64_t row = int64_t(blockIdx.x) * kWarps + warp; row < n; row += int64_t(gridDim.x) * kWarps) {
    const T* x = inp + row * c;
    const T* dy = dout + row * c;
    const float m = mean[row], r = rstd[row];
    float sum_dxhat = 0, sum_dxhat_xhat = 0;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const int k = lane + 32 * i;
      if (k >= chunks) continue;
      const Chunk16<T> xc = load_chunk(x, k), gc = load_chunk(dy, k), wc = load_chunk(weight, k);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float xhat = (to_float(xc.v[e]) - m) * r, g = to_float(gc.v[e]);
        const float dxhat = g * to_float(wc.v[e]);
        sum_dxhat += dxhat;
        sum_dxhat_xhat += dxhat * xhat;
        acc[0][i][e] += g * xhat;
        acc[1][i][e] += g;
      }
    }
    if (!dinp) continue;
    const float mean_dxhat = warp_sum(sum_dxhat) / float(c);
    const float mean_dxhat_xhat = warp_sum(sum_dxhat_xhat) / float(c);
    T* dx = dinp + row * c;
    // The row again, from the cache this time.
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const int k = lane + 32 * i;
      if (k >= chunks) continue;
      const Chunk16<T> xc = load_chunk(x, k), gc = load_chunk(dy, k), wc = load_chunk(weight, k);
      float d[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float xhat = (to_float(xc.v[e]) - m) * r;
        const float dxhat = to_float(gc.v[e]) * to_float(wc.v[e]);
        d[e] = r * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      }
      reinterpret_cast<uint4*>(dx)[k] = plus_chunk<T>(d, dinp_add, row * c, k).raw;
    }
  }
  __syncthreads();
  block_partials<2, K, V>(partial, sums, acc, chunks);
}

// partial (gridDim.x, 1, C): per block, the sums of dy * x * rstd (dweight) over its rows.
template <class T, int K>
__global__ void __launch_bounds__(32 * kWarps) rmsnorm_backward_rows_kernel(T* dinp, float* partial, const T* dout,
                                                                             const T* inp, const T* weight,
                                                                             const float* rstd, int64_t n, int chunks,
                                                                             const T* dinp_add) {
  constexpr int V = Chunk16<T>::n;
  extern __shared__ float sums[];  // (1, C)
  const int64_t c = int64_t(chunks) * V;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) sums[j] = 0.0f;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[1][K][V] = {};
  for (int64_t row = int64_t(blockIdx.x) * kWarps + warp; row < n; row += int64_t(gridDim.x) * kWarps) {
    const T* x = inp + row * c;
    const T* dy = dout + row * c;
    const float r = rstd[row];
    float sum_gx = 0;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const int k = lane + 32 * i;
      if (k >= chunks) continue;
      const Chunk16<T> xc = load_chunk(x, k), gc = load_chunk(dy, k), wc = load_chunk(weight, k);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float xv = to_float(xc.v[e]), g = to_float(gc.v[e]);
        sum_gx += g * to_float(wc.v[e]) * xv;
        acc[0][i][e] += g * xv * r;
      }
    }
    if (!dinp) continue;
    const float mean_gx = warp_sum(sum_gx) / float(c);
    T* dx = dinp + row * c;
#pragma unroll
    for (int i = 0; i < K; ++i) {
      const int k = lane + 32 * i;
      if (k >= chunks) continue;
      const Chunk16<T> xc = load_chunk(x, k), gc = load_chunk(dy, k), wc = load_chunk(weight, k);
      float d[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float xv = to_float(xc.v[e]), g = to_float(gc.v[e]) * to_float(wc.v[e]);
        d[e] = r * (g - xv * r * r * mean_gx);
      }
      reinterpret_cast<uint4*>(dx)[k] = plus_chunk<T>(d, dinp_add, row * c, k).raw;
    }
  }
  __syncthreads();
  block_partials<1, K, V>(partial, sums, acc, chunks);
}

// dst_a (C) += sum over blocks of partial (blocks, arrays, C)[., a, .] for a = blockIdx.y: 32
// columns a block, 8 phases over the blocks, combined in a fixed order.
template <class T>
__global__ void sum_partials_kernel(T* dst0, T* dst1, const float* partial, int blocks, int arrays, int64_t c) {
  __shared__ float phase_sums[8][33];
  const int a = blockIdx.y;
  const int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0;
  if (j < c)
    for (int b = threadIdx.y; b < blocks; b += 8) s += partial[(int64_t(b) * arrays + a) * c + j];
  phase_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  T* dst = a == 0 ? dst0 : dst1;
  if (threadIdx.y != 0 || j >= c || !dst) return;
  float total = 0;
#pragma unroll
  for (int y = 0; y < 8; ++y) total += phase_sums[y][threadIdx.x];
  dst[j] = from_float<T>(to_float(dst[j]) + total);
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The chunks of a row and the chunks per lane, or 0 when no vectorized kernel covers the row.
template <class T>
int chunks_per_lane(int64_t c, int accumulator_arrays, int& chunks) {
  constexpr int V = Chunk16<T>::n;
  if (c % V != 0) return 0;
  chunks = int(c / V);
  const int needed = (chunks + 31) / 32;
  for (int k : {1, 2, 3, 4, 6, 8})
    if (k >= needed) return k * V * accumulator_arrays <= kMaxAccumulators ? k : 0;
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

// Enough resident blocks to fill the device; more only lengthen the final sum.
int backward_row_blocks(int64_t n) {
  return int(std::min<int64_t>((n + kWarps - 1) / kWarps, int64_t(multiprocessor_count()) * 2));
}

template <class T>
void sum_partials(T* dst0, T* dst1, const float* partial, int blocks, int arrays, int64_t c) {
  const dim3 grid(unsigned((c + 31) / 32), unsigned(arrays));
  sum_partials_kernel<<<grid, dim3(32, 8), 0, compute_stream()>>>(dst0, dst1, partial, blocks, arrays, c);
  ZT_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

template <class T>
bool layernorm_forward_rows(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias,
                            int64_t n, int64_t c, double eps, const T* residual, T* sum) {
  int chunks = 0;
  const int k = chunks_per_lane<T>(c, 0, chunks);
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
  const int k = chunks_per_lane<T>(c, 0, chunks);
  if (k == 0 || !aligned16(out) || !aligned16(inp) || !aligned16(weight) || !aligned16(residual) || !aligned16(sum))
    return false;
  with_chunks(k, [&](auto kc) {
    rmsnorm_forward_rows_kernel<T, decltype(kc)::value><<<forward_blocks(n), 32 * kWarps, 0, compute_stream()>>>(
        out, rstd, inp, weight, n, chunks, float(eps), residual, sum);
  });
  ZT_CUDA_CHECK_LAUNCH("rmsnorm_forward_rows_kernel");
  return true;
}

template <class T>
bool layernorm_backward_rows(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                             const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add) {
  int chunks = 0;
  const int k = chunks_per_lane<T>(c, 2, chunks);
  if (k == 0 || !aligned16(dinp) || !aligned16(dout) || !aligned16(inp) || !aligned16(weight) || !aligned16(dinp_add))
    return false;
  const int blocks = backward_row_blocks(n);
  Scratch partial(size_t(blocks) * 2 * size_t(c) * sizeof(float));
  const size_t shared = 2 * size_t(c) * sizeof(float);
  with_chunks(k, [&](auto kc) {
    allow_shared(layernorm_backward_rows_kernel<T, decltype(kc)::value>, shared);
    layernorm_backward_rows_kernel<T, decltype(kc)::value><<<blocks, 32 * kWarps, shared, compute_stream()>>>(
        dinp, partial.as<float>(), dout, inp, weight, mean, rstd, n, chunks, dinp_add);
  });
  ZT_CUDA_CHECK_LAUNCH("layernorm_backward_rows_kernel");
  if (dweight || dbias) sum_partials(dweight, dbias, partial.as<float>(), blocks, 2, c);
  return true;
}

template <class T>
bool rmsnorm_backward_rows(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                           int64_t n, int64_t c, const T* dinp_add) {
  int chunks = 0;
  const int k = chunks_per_lane<T>(c, 1, chunks);
  if (k == 0 || !aligned16(dinp) || !aligned16(dout) || !aligned16(inp) || !aligned16(weight) || !aligned16(dinp_add))
    return false;
  const int blocks = backward_row_blocks(n);
  Scratch partial(size_t(blocks) * size_t(c) * sizeof(float));
  const size_t shared = size_t(c) * sizeof(float);
  with_chunks(k, [&](auto kc) {
    allow_shared(rmsnorm_backward_rows_kernel<T, decltype(kc)::value>, shared);
    rmsnorm_backward_rows_kernel<T, decltype(kc)::value><<<blocks, 32 * kWarps, shared, compute_stream()>>>(
        dinp, partial.as<float>(), dout, inp, weight, rstd, n, chunks, dinp_add);
  });
  ZT_CUDA_CHECK_LAUNCH("rmsnorm_backward_rows_kernel");
  if (dweight) sum_partials(dweight, static_cast<T*>(nullptr), partial.as<float>(), blocks, 1, c);
  return true;
}

#define ZT_INSTANTIATE(T)                                                                                        \
  template bool layernorm_forward_rows<T>(T*, float*, float*, const T*, const T*, const T*, int64_t, int64_t,    \
                                          double, const T*, T*);                                                 \
  template bool layernorm_backward_rows<T>(T*, T*, T*, const T*, const T*, const T*, const float*, const float*, \
                                           int64_t, int64_t, const T*);                                          \
  template bool rmsnorm_forward_rows<T>(T*, float*, const T*, const T*, int64_t, int64_t, double, const T*, T*); \
  template bool rmsnorm_backward_rows<T>(T*, T*, const T*, const T*, const T*, const float*, int64_t, int64_t,   \
                                         const T*);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
