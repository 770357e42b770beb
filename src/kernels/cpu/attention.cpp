// Causal multi-head attention with grouped key/value heads, on BLAS per (batch, head).
// The probabilities are kept (B, NH, T, T) for the backward: simple and fast at the sizes a CPU
// trains; the GPU backend recomputes them instead (flash attention).
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_ops.hpp"
#include "fast_math.hpp"

namespace zt::cpu {

namespace {

// Row i of s (T, T) becomes the causal softmax of its first i+1 entries; the rest are zero.
template <class T>
void causal_softmax_rows(T* s, int64_t t) {
  for (int64_t i = 0; i < t; ++i) {
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
    gemm<T>(false, true, t, t, hd, scale, q, stride, k, stride, T(0), p, t);
    causal_softmax_rows(p, t);
    gemm<T>(false, false, t, hd, t, T(1), p, t, v, stride, T(0), out + bi * t * out_stride + h * hd, out_stride);
  }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* att, int64_t b, int64_t t, int64_t nh,
                        int64_t nkv, int64_t hd) {
  const int64_t stride = (nh + 2 * nkv) * hd;
  const int64_t out_stride = nh * hd;
  const int64_t group = nh / nkv;
  const T scale = T(1.0 / std::sqrt(double(hd)));
  // Each task owns one key/value head and walks the query heads that read it, so that the key
  // and value gradients accumulate without races.
#pragma omp parallel
  {
    std::vector<T> ds(size_t(t * t));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < b * nkv; ++task) {
      const int64_t bi = task / nkv, kh = task % nkv;
      const T* k = qkv + bi * t * stride + (nh + kh) * hd;
      const T* v = qkv + bi * t * stride + (nh + nkv + kh) * hd;
      T* dk = dqkv + bi * t * stride + (nh + kh) * hd;
      T* dv = dqkv + bi * t * stride + (nh + nkv + kh) * hd;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = kh * group + g;
        const T* q = qkv + bi * t * stride + h * hd;
        const T* p = att + (bi * nh + h) * t * t;
        const T* dy = dout + bi * t * out_stride + h * hd;
        T* dq = dqkv + bi * t * stride + h * hd;
        const T beta = g == 0 ? T(0) : T(1);
        // dV (+)= P^T dY
        gemm<T>(true, false, t, hd, t, T(1), p, t, dy, out_stride, beta, dv, stride);
        // dP = dY V^T, then dS = P * (dP - rowsum(P * dP))
        gemm<T>(false, true, t, t, hd, T(1), dy, out_stride, v, stride, T(0), ds.data(), t);
        for (int64_t i = 0; i < t; ++i) {
          T* row = ds.data() + i * t;
          const T* prow = p + i * t;
          double dot = 0;
          for (int64_t j = 0; j <= i; ++j) dot += double(prow[j]) * double(row[j]);
          for (int64_t j = 0; j <= i; ++j) row[j] = prow[j] * (row[j] - T(dot));
          for (int64_t j = i + 1; j < t; ++j) row[j] = T(0);
        }
        // dQ = scale * dS K ; dK (+)= scale * dS^T Q
        gemm<T>(false, false, t, hd, t, scale, ds.data(), t, k, stride, T(0), dq, stride);
        gemm<T>(true, false, t, hd, t, scale, ds.data(), t, q, stride, beta, dk, stride);
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
  template void attention_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,  \
                                      int64_t);                                                              \
  template void rope_apply<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
