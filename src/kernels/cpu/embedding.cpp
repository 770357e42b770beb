// Token embedding lookup and its scatter-add backward.
#include "cpu_ops.hpp"

namespace zt::cpu {

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* weight, int64_t n, int64_t v, int64_t c, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* w = weight + int64_t(ids[row]) * c;
    T* o = out + row * c;
    if (accumulate) {
      for (int64_t j = 0; j < c; ++j) o[j] += w[j];
    } else {
      for (int64_t j = 0; j < c; ++j) o[j] = w[j];
    }
  }
}

template <class T>
void embedding_backward(T* dweight, const T* dout, const int32_t* ids, int64_t n, int64_t v, int64_t c) {
  // Threads split the channels, not the rows: repeated ids then never race.
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t j0 = 0; j0 < c; j0 += 16) {
      const int64_t j1 = j0 + 16 < c ? j0 + 16 : c;
      for (int64_t row = 0; row < n; ++row) {
        T* dw = dweight + int64_t(ids[row]) * c;
        const T* dy = dout + row * c;
        for (int64_t j = j0; j < j1; ++j) dw[j] += dy[j];
      }
    }
  }
}

#define ZT_INSTANTIATE(T)                                                                                       \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, bool);            \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
