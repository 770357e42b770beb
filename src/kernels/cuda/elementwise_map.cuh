// Elementwise maps over equal-length arrays, 16 bytes per thread per array: `in` arrays are read,
// `out` arrays written, and f(const float (&x)[NIn], float (&y)[NOut]) maps one element's inputs
// (as floats) to its outputs. When every pointer is 16-byte aligned the body runs on whole chunks
// (8 bf16 or 4 f32 a thread, several loads in flight), and the tail element by element; otherwise
// element by element throughout. An output may alias an input of the same index (in-place ops):
// each element is read before it is written by the same thread.
#pragma once

#include "common.cuh"

namespace zt::cuda {

template <class T, int N>
struct Arrays {
  T* p[N];
};

// b = f over the elements of chunks a, one element of every array at a time.
template <class T, int NIn, int NOut, class F>
__device__ __forceinline__ void map_chunk(const Chunk16<T> (&a)[NIn], Chunk16<T> (&b)[NOut], const F& f) {
#pragma unroll
  for (int e = 0; e < Chunk16<T>::n; ++e) {
    float x[NIn], y[NOut];
#pragma unroll
    for (int k = 0; k < NIn; ++k) x[k] = to_float(a[k].v[e]);
    f(x, y);
#pragma unroll
    for (int k = 0; k < NOut; ++k) b[k].v[e] = from_float<T>(y[k]);
  }
}

template <class T, int NIn, int NOut, class F>
__global__ void elementwise_map_kernel(Arrays<T, NOut> out, Arrays<const T, NIn> in, int64_t n, bool vectorized, F f) {
  constexpr int V = Chunk16<T>::n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t chunks = vectorized ? n / V : 0;
  for (int64_t c = first; c < chunks; c += stride) {
    Chunk16<T> a[NIn];
#pragma unroll
    for (int k = 0; k < NIn; ++k) a[k].raw = reinterpret_cast<const uint4*>(in.p[k])[c];
    Chunk16<T> b[NOut];
    map_chunk(a, b, f);
#pragma unroll
    for (int k = 0; k < NOut; ++k) reinterpret_cast<uint4*>(out.p[k])[c] = b[k].raw;
  }
  for (int64_t i = chunks * V + first; i < n; i += stride) {
    float x[NIn], y[NOut];
#pragma unroll
    for (int k = 0; k < NIn; ++k) x[k] = to_float(in.p[k][i]);
    f(x, y);
#pragma unroll
    for (int k = 0; k < NOut; ++k) out.p[k][i] = from_float<T>(y[k]);
  }
}

// Runs the map on the compute stream; name is the op, for launch errors.
template <class T, int NIn, int NOut, class F>
void elementwise_map(const char* name, Arrays<T, NOut> out, Arrays<const T, NIn> in, int64_t n, F f) {
  if (n == 0) return;
  bool vectorized = true;
  for (int k = 0; k < NOut; ++k) vectorized = vectorized && reinterpret_cast<uintptr_t>(out.p[k]) % 16 == 0;
  for (int k = 0; k < NIn; ++k) vectorized = vectorized && reinterpret_cast<uintptr_t>(in.p[k]) % 16 == 0;
  const int64_t work = vectorized ? (n + Chunk16<T>::n - 1) / Chunk16<T>::n : n;
  elementwise_map_kernel<T, NIn, NOut><<<grid_size(work, 256), 256, 0, compute_stream()>>>(out, in, n, vectorized, f);
  ZT_CUDA_CHECK_LAUNCH(name);
}

// The same map over `rows` rows of `cols` elements, each array with its own row pitch (elements
// from one row's start to the next): column blocks of packed tensors, such as the gate and up
// halves of SwiGLU's (N, 2H) input. Whole 16-byte chunks when every pointer is aligned and every
// pitch and cols are whole chunks; else element by element.
template <int N>
struct Pitches {
  int64_t v[N];
};

template <class T, int NIn, int NOut, class F>
__global__ void elementwise_rows_kernel(Arrays<T, NOut> out, Pitches<NOut> out_pitch, Arrays<const T, NIn> in,
                                        Pitches<NIn> in_pitch, int64_t rows, int64_t cols, bool vectorized, F f) {
  constexpr int V = Chunk16<T>::n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (vectorized) {
    const int64_t row_chunks = cols / V, chunks = rows * row_chunks;
    for (int64_t c = first; c < chunks; c += stride) {
      const int64_t r = c / row_chunks, col = (c - r * row_chunks) * V;
      Chunk16<T> a[NIn];
#pragma unroll
      for (int k = 0; k < NIn; ++k) a[k].raw = *reinterpret_cast<const uint4*>(in.p[k] + r * in_pitch.v[k] + col);
      Chunk16<T> b[NOut];
      map_chunk(a, b, f);
#pragma unroll
      for (int k = 0; k < NOut; ++k) *reinterpret_cast<uint4*>(out.p[k] + r * out_pitch.v[k] + col) = b[k].raw;
    }
    return;
  }
  for (int64_t i = first; i < rows * cols; i += stride) {
    const int64_t r = i / cols, col = i - r * cols;
    float x[NIn], y[NOut];
#pragma unroll
    for (int k = 0; k < NIn; ++k) x[k] = to_float(in.p[k][r * in_pitch.v[k] + col]);
    f(x, y);
#pragma unroll
    for (int k = 0; k < NOut; ++k) out.p[k][r * out_pitch.v[k] + col] = from_float<T>(y[k]);
  }
}

template <class T, int NIn, int NOut, class F>
void elementwise_rows(const char* name, Arrays<T, NOut> out, Pitches<NOut> out_pitch, Arrays<const T, NIn> in,
                      Pitches<NIn> in_pitch, int64_t rows, int64_t cols, F f) {
  if (rows == 0 || cols == 0) return;
  constexpr int V = Chunk16<T>::n;
  bool vectorized = cols % V == 0;
  for (int k = 0; k < NOut; ++k)
    vectorized = vectorized && reinterpret_cast<uintptr_t>(out.p[k]) % 16 == 0 && out_pitch.v[k] % V == 0;
  for (int k = 0; k < NIn; ++k)
    vectorized = vectorized && reinterpret_cast<uintptr_t>(in.p[k]) % 16 == 0 && in_pitch.v[k] % V == 0;
  const int64_t work = vectorized ? rows * (cols / V) : rows * cols;
  elementwise_rows_kernel<T, NIn, NOut>
      <<<grid_size(work, 256), 256, 0, compute_stream()>>>(out, out_pitch, in, in_pitch, rows, cols, vectorized, f);
  ZT_CUDA_CHECK_LAUNCH(name);
}

}  // namespace zt::cuda
