// The rotary embedding (RoPE) on the first n_rotated heads of each token's row, in place, in f32
// arithmetic: x (B*T, heads, HD), element i of a head's first half rotated with element i + HD/2
// by the angle (position_offset + t) * inv_freq[i]; the inverse (the backward) rotates by minus it.
// Three kernels by what the head size allows, all computing the same floats: 16-byte chunks of
// each half (HD a multiple of 2 chunks, rows aligned), pairs of elements, single elements.
#include "common.cuh"

namespace zt::cuda {

namespace {

#define ZT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// x (B*T, heads, HD): one thread per (token, rotated head, i < HD/2) pair of elements.
template <class T>
__global__ void rope_kernel(T* x, const float* inv_freq, int64_t rows, int64_t t, int64_t n_heads, int64_t n_rotated,
                            int64_t hd, int64_t position_offset, float sign) {
  const int64_t half = hd / 2, total = rows * n_rotated * half;
  ZT_GRID_STRIDE(idx, total) {
    const int64_t i = idx % half, h = (idx / half) % n_rotated, row = idx / (half * n_rotated);
    const float angle = float(position_offset + row % t) * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    s *= sign;
    T* head = x + (row * n_heads + h) * hd;
    const float x1 = to_float(head[i]), x2 = to_float(head[i + half]);
    head[i] = from_float<T>(x1 * c - x2 * s);
    head[i + half] = from_float<T>(x2 * c + x1 * s);
  }
}

// Two adjacent elements of T, moved as one 4- or 8-byte access.
template <class T> struct Pair2;
template <> struct Pair2<bf16> { using type = __nv_bfloat162; };
template <> struct Pair2<float> { using type = float2; };

// The same rotation with each angle's sine and cosine computed once for all the rotated heads of a
// token: a thread takes elements (2p, 2p + 1) of the first half and their partners in the second
// half, in one token, and walks the heads. The angles are the same floats as above (so are the
// results); the sin/cos work is divided by the rotated heads, and the accesses are pairs.
template <class T>
__global__ void rope_pairs_kernel(T* x, const float* inv_freq, int64_t rows, int64_t t, int64_t n_heads,
                                  int64_t n_rotated, int64_t hd, int64_t position_offset, float sign) {
  using P = typename Pair2<T>::type;
  const int64_t half = hd / 2, pairs = half / 2, total = rows * pairs;
  ZT_GRID_STRIDE(idx, total) {
    const int64_t p = idx % pairs, row = idx / pairs, i = 2 * p;
    const float position = float(position_offset + row % t);
    float s0, c0, s1, c1;
    sincosf(position * inv_freq[i], &s0, &c0);
    sincosf(position * inv_freq[i + 1], &s1, &c1);
    s0 *= sign, s1 *= sign;
    T* token = x + row * n_heads * hd;
    for (int64_t h = 0; h < n_rotated; ++h) {
      P* lo = reinterpret_cast<P*>(token + h * hd + i);
      P* hi = reinterpret_cast<P*>(token + h * hd + i + half);
      const P a = *lo, b = *hi;
      const float a0 = to_float(a.x), a1 = to_float(a.y), b0 = to_float(b.x), b1 = to_float(b.y);
      P out_lo, out_hi;
      out_lo.x = from_float<T>(a0 * c0 - b0 * s0), out_lo.y = from_float<T>(a1 * c1 - b1 * s1);
      out_hi.x = from_float<T>(b0 * c0 + a0 * s0), out_hi.y = from_float<T>(b1 * c1 + a1 * s1);
      *lo = out_lo, *hi = out_hi;
    }
  }
}

constexpr int kChunkHeads = 4;  // heads a thread of the chunk kernel walks, sharing its sines and cosines

// A thread takes one 16-byte chunk of the first half (V elements from i = V c) and its partner in
// the second half, in one token, for up to kChunkHeads consecutive rotated heads.
template <class T>
__global__ void rope_chunks_kernel(T* x, const float* inv_freq, int64_t rows, int64_t t, int64_t n_heads,
                                   int64_t n_rotated, int64_t hd, int64_t position_offset, float sign) {
  constexpr int V = Chunk16<T>::n;
  const int64_t half = hd / 2, chunks = half / V, groups = (n_rotated + kChunkHeads - 1) / kChunkHeads;
  ZT_GRID_STRIDE(idx, rows * groups * chunks) {
    const int64_t c = idx % chunks, group = (idx / chunks) % groups, row = idx / (chunks * groups);
    const float position = float(position_offset + row % t);
    float sn[V], cs[V];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      sincosf(position * inv_freq[c * V + e], &sn[e], &cs[e]);
      sn[e] *= sign;
    }
    T* token = x + row * n_heads * hd;
    const int64_t last = min(n_rotated, (group + 1) * kChunkHeads);
    for (int64_t h = group * kChunkHeads; h < last; ++h) {
      uint4* lo = reinterpret_cast<uint4*>(token + h * hd + c * V);
      uint4* hi = reinterpret_cast<uint4*>(token + h * hd + half + c * V);
      Chunk16<T> a, b, out_lo, out_hi;
      a.raw = *lo, b.raw = *hi;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float x1 = to_float(a.v[e]), x2 = to_float(b.v[e]);
        out_lo.v[e] = from_float<T>(x1 * cs[e] - x2 * sn[e]);
        out_hi.v[e] = from_float<T>(x2 * cs[e] + x1 * sn[e]);
      }
      *lo = out_lo.raw, *hi = out_hi.raw;
    }
  }
}

}  // namespace

template <class T>
void rope_apply(T* x, const float* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse) {
  const int64_t total = b * t * n_rotated * (hd / 2);
  if (total == 0) return;
  const float sign = inverse ? -1.0f : 1.0f;
  constexpr int V = Chunk16<T>::n;
  if (hd % (2 * V) == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const int64_t threads = b * t * ((n_rotated + kChunkHeads - 1) / kChunkHeads) * (hd / (2 * V));
    rope_chunks_kernel<<<grid_size(threads, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads,
                                                                             n_rotated, hd, position_offset, sign);
    ZT_CUDA_CHECK_LAUNCH("rope_chunks_kernel");
    return;
  }
  if (hd % 4 == 0 && reinterpret_cast<uintptr_t>(x) % sizeof(typename Pair2<T>::type) == 0) {
    const int64_t threads = b * t * (hd / 4);
    rope_pairs_kernel<<<grid_size(threads, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads, n_rotated,
                                                                            hd, position_offset, sign);
    ZT_CUDA_CHECK_LAUNCH("rope_pairs_kernel");
    return;
  }
  rope_kernel<<<grid_size(total, 256), 256, 0, compute_stream()>>>(x, inv_freq, b * t, t, n_heads, n_rotated, hd,
                                                                   position_offset, sign);
  ZT_CUDA_CHECK_LAUNCH("rope_kernel");
}

template void rope_apply<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void rope_apply<bf16>(bf16*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace zt::cuda
