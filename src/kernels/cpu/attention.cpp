// Causal multi-head attention with grouped key/value heads, on BLAS per (batch, head).
// The probabilities are kept (B, NH, T, T) for the backward: simple and fast at the sizes a CPU
// trains; the GPU backend recomputes them instead (flash attention).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_ops.hpp"
#include "fast_math.hpp"

namespace zt::cpu {

namespace {

// Query rows are processed in blocks: a block of rows [i0, i1) attends to keys [0, i1) only,
// so the products skip the masked upper triangle (half the work at long sequences).
constexpr int64_t kQueryBlock = 64;

// Rows [i0, i1) of s (T, T): row i becomes the causal softmax of its first i+1 entries; the
// rest of the row is zero.
template <class T>
void causal_softmax_rows(T* s, int64_t t, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    T* row = s + i * t;
    T max = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j <= i; ++j) max = row[j] > max ? row[j] : max;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j <= i; ++j) {
      row[j] = fast_exp(row[j] - max);
      sum += row[j];
    }
    const T inv = T(1.0 / sum);
    for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
    for (int64_t j = i + 1; j < t; ++j) row[j] = T(0);
  }
}

}  // namespace

template <class T>
void attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  const int64_t stride = (nh + 2 * nkv) * hd;  // qkv row
  const int64_t out_stride = nh * hd;
  const int64_t group = nh / nkv;
  const T scale = T(1.0 / std::sqrt(double(hd)));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < b * nh; ++task) {
    const int64_t bi = task / nh, h = task % nh, kh = h / group;
    const T* q = qkv + bi * t * stride + h * hd;
    const T* k = qkv + bi * t * stride + (nh + kh) * hd;
    const T* v = qkv + bi * t * stride + (nh + nkv + kh) * hd;
    T* p = att + task * t * t;
    T* o = out + bi * t * out_stride + h * hd;
    for (int64_t i0 = 0; i0 < t; i0 += kQueryBlock) {
      const int64_t i1 = std::min(t, i0 + kQueryBlock), rows = i1 - i0;
      // S[i0:i1, 0:i1] = scale * Q[i0:i1] K[0:i1]^T, softmax, then O[i0:i1] = P[i0:i1, 0:i1] V[0:i1]
      gemm<T>(false, true, rows, i1, hd, scale, q + i0 * stride, stride, k, stride, T(0), p + i0 * t, t);
      causal_softmax_rows(p, t, i0, i1);
      gemm<T>(false, false, rows, hd, i1, T(1), p + i0 * t, t, v, stride, T(0), o + i0 * out_stride, out_stride);
    }
  }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* att, int64_t b, int64_t t,
                        int64_t nh, int64_t nkv, int64_t hd) {
  const int64_t stride = (nh + 2 * nkv) * hd;
  const int64_t out_stride = nh * hd;
  const int64_t group = nh / nkv;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  // Each task owns one key/value head and walks the query heads that read it, so that the key
  // and value gradients accumulate without races.
#pragma omp parallel
  {
    std::vector<T> ds(size_t(kQueryBlock * t));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < b * nkv; ++task) {
      const int64_t bi = task / nkv, kh = task % nkv;
      const T* k = qkv + bi * t * stride + (nh + kh) * hd;
      const T* v = qkv + bi * t * stride + (nh + nkv + kh) * hd;
      T* dk = dqkv + bi * t * stride + (nh + kh) * hd;
      T* dv = dqkv + bi * t * stride + (nh + nkv + kh) * hd;
      for (int64_t row = 0; row < t; ++row) {
        std::fill(dk + row * stride, dk + row * stride + hd, T(0));
        std::fill(dv + row * stride, dv + row * stride + hd, T(0));
      }
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = kh * group + g;
        const T* q = qkv + bi * t * stride + h * hd;
        const T* p = att + (bi * nh + h) * t * t;
        const T* dy = dout + bi * t * out_stride + h * hd;
        const T* o = out + bi * t * out_stride + h * hd;
        T* dq = dqkv + bi * t * stride + h * hd;
        for (int64_t i0 = 0; i0 < t; i0 += kQueryBlock) {
          const int64_t i1 = std::min(t, i0 + kQueryBlock), rows = i1 - i0;
          const T* pb = p + i0 * t;
          // dV[0:i1] += P[i0:i1, 0:i1]^T dY[i0:i1]
          gemm<T>(true, false, i1, hd, rows, T(1), pb, t, dy + i0 * out_stride, out_stride, T(1), dv, stride);
          // dP = dY[i0:i1] V[0:i1]^T, then dS = P * (dP - D) with D_i = rowsum(P * dP)_i = dY_i . O_i
          gemm<T>(false, true, rows, i1, hd, T(1), dy + i0 * out_stride, out_stride, v, stride, T(0), ds.data(), i1);
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + r;
            T* row = ds.data() + r * i1;
            const T* prow = pb + r * t;
            double dot = 0;
            for (int64_t d = 0; d < hd; ++d) dot += double(dy[i * out_stride + d]) * double(o[i * out_stride + d]);
            for (int64_t j = 0; j <= i; ++j) row[j] = prow[j] * (row[j] - T(dot));
            for (int64_t j = i + 1; j < i1; ++j) row[j] = T(0);
          }
          // dQ[i0:i1] = scale * dS K[0:i1] ; dK[0:i1] += scale * dS^T Q[i0:i1]
          gemm<T>(false, false, rows, hd, i1, scale, ds.data(), i1, k, stride, T(0), dq + i0 * stride, stride);
          gemm<T>(true, false, i1, hd, rows, scale, ds.data(), i1, q + i0 * stride, stride, T(1), dk, stride);
        }
      }
    }
  }
}

template <class T>
void rope_apply(T* x, const T* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse) {
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < b * t; ++row) {
    const int64_t pos = position_offset + row % t;
    T* token = x + row * n_heads * hd;
    for (int64_t i = 0; i < half; ++i) {
      const T angle = T(pos) * inv_freq[i];
      const T c = std::cos(angle);
      const T s = inverse ? -std::sin(angle) : std::sin(angle);
      for (int64_t h = 0; h < n_rotated; ++h) {
        T* head = token + h * hd;
        const T x1 = head[i], x2 = head[i + half];
        head[i] = x1 * c - x2 * s;
        head[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

#define ZT_INSTANTIATE(T)                                                                                    \
  template void attention_forward<T>(T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);         \
  template void attention_backward<T>(T*, const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                      int64_t, int64_t);                                                     \
  template void rope_apply<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
