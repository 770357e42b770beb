// LayerNorm and RMSNorm over the last dimension, statistics accumulated in double.
#include <omp.h>

#include <cmath>
#include <vector>

#include "cpu_ops.hpp"

namespace zt::cpu {

namespace {

// Parameter gradients accumulate per thread, then combine: rows run in parallel.
template <class T>
struct ThreadColumnSums {
  int threads;
  int64_t c;
  std::vector<double> data;
  ThreadColumnSums(int64_t columns, int arrays) : threads(omp_get_max_threads()), c(columns),
      data(size_t(threads) * size_t(columns) * size_t(arrays), 0.0) {}
  double* row(int thread, int array) { return data.data() + (size_t(array) * size_t(threads) + size_t(thread)) * size_t(c); }
  void add_into(T* dst, int array) {
    if (!dst) return;
    for (int64_t j = 0; j < c; ++j) {
      double s = 0;
      for (int t = 0; t < threads; ++t) s += row(t, array)[j];
      dst[j] += T(s);
    }
  }
};

}  // namespace

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias, int64_t n,
                       int64_t c, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* x = inp + row * c;
    double m = 0;
    for (int64_t j = 0; j < c; ++j) m += x[j];
    m /= double(c);
    double var = 0;
    for (int64_t j = 0; j < c; ++j) var += (x[j] - m) * (x[j] - m);
    var /= double(c);
    const double s = 1.0 / std::sqrt(var + eps);
    T* o = out + row * c;
    for (int64_t j = 0; j < c; ++j) o[j] = T((x[j] - m) * s) * weight[j] + (bias ? bias[j] : T(0));
    mean[row] = T(m);
    rstd[row] = T(s);
  }
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int64_t n, int64_t c) {
  ThreadColumnSums<T> sums(c, 2);
#pragma omp parallel
  {
    double* dw = sums.row(omp_get_thread_num(), 0);
    double* db = sums.row(omp_get_thread_num(), 1);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < n; ++row) {
      const T* x = inp + row * c;
      const T* dy = dout + row * c;
      const double m = mean[row], s = rstd[row];
      // dL/dxhat = dy * w; dx = s * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      double mean_dxhat = 0, mean_dxhat_xhat = 0;
      for (int64_t j = 0; j < c; ++j) {
        const double xhat = (x[j] - m) * s;
        const double dxhat = double(dy[j]) * double(weight[j]);
        mean_dxhat += dxhat;
        mean_dxhat_xhat += dxhat * xhat;
        dw[j] += double(dy[j]) * xhat;
        db[j] += double(dy[j]);
      }
      mean_dxhat /= double(c);
      mean_dxhat_xhat /= double(c);
      if (!dinp) continue;
      T* dx = dinp + row * c;
      for (int64_t j = 0; j < c; ++j) {
        const double xhat = (x[j] - m) * s;
        const double dxhat = double(dy[j]) * double(weight[j]);
        dx[j] = T(s * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
      }
    }
  }
  sums.add_into(dweight, 0);
  sums.add_into(dbias, 1);
}

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* x = inp + row * c;
    double ms = 0;
    for (int64_t j = 0; j < c; ++j) ms += double(x[j]) * double(x[j]);
    const double s = 1.0 / std::sqrt(ms / double(c) + eps);
    T* o = out + row * c;
    // As Hugging Face: normalize in the compute dtype, then multiply by the weight.
    for (int64_t j = 0; j < c; ++j) o[j] = weight[j] * T(x[j] * s);
    rstd[row] = T(s);
  }
}

template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      int64_t n, int64_t c) {
  ThreadColumnSums<T> sums(c, 1);
#pragma omp parallel
  {
    double* dw = sums.row(omp_get_thread_num(), 0);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < n; ++row) {
      const T* x = inp + row * c;
      const T* dy = dout + row * c;
      const double s = rstd[row];
      // y = x * s * w, s = (mean(x^2) + eps)^-1/2: dx = s * (dy*w - x * s^2 * mean(dy*w*x))
      double mean_dxhat_x = 0;
      for (int64_t j = 0; j < c; ++j) {
        const double g = double(dy[j]) * double(weight[j]);
        mean_dxhat_x += g * x[j];
        dw[j] += double(dy[j]) * double(x[j]) * s;
      }
      mean_dxhat_x /= double(c);
      if (!dinp) continue;
      T* dx = dinp + row * c;
      for (int64_t j = 0; j < c; ++j) {
        const double g = double(dy[j]) * double(weight[j]);
        dx[j] = T(s * (g - double(x[j]) * s * s * mean_dxhat_x));
      }
    }
  }
  sums.add_into(dweight, 0);
}

#define ZT_INSTANTIATE(T)                                                                                     \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, double);    \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t, \
                                      int64_t);                                                               \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);                    \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
