// 16-byte chunk access for the row-wise norm kernels (norm_rows.cu, norm_rows_backward.cu): a row
// of C elements of T is C / Chunk16<T>::n chunks; chunk k of a row starts at element k * n.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace zt::cuda::norm_chunks {

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

inline bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace zt::cuda::norm_chunks
