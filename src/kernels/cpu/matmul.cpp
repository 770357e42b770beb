// Matmul with a bias and activation epilogue, and its backward, on OpenBLAS.
#include <omp.h>

#include <memory>
#include <vector>

#include "activation_math.hpp"
#include "cpu_ops.hpp"

namespace zt::cpu {

using ops::Activation;
using ops::WeightLayout;

namespace {

// sums (OC) += the column sums of x (N, OC), as ones (N)^T @ x through BLAS.
template <class T>
void add_column_sums(T* sums, const T* x, int64_t n, int64_t oc) {
  thread_local std::vector<T> ones;
  if (int64_t(ones.size()) < n) ones.assign(size_t(n), T(1));
  gemv_transposed<T>(n, oc, T(1), x, oc, ones.data(), T(1), sums);
}

}  // namespace

template <class T>
void matmul_forward(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n, int64_t c,
                    int64_t oc, WeightLayout layout, Activation act) {
  T* target = act == Activation::none ? out : pre_act;
  const bool trans_w = layout == WeightLayout::out_in;
  gemm<T>(false, trans_w, n, oc, c, T(1), inp, c, weight, trans_w ? c : oc, T(0), target, oc);
  if (!bias && act == Activation::none) return;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    T* pre = target + row * oc;
    T* o = out + row * oc;
    if (bias) {
#pragma omp simd
      for (int64_t j = 0; j < oc; ++j) pre[j] += bias[j];
    }
    if (act == Activation::gelu_tanh) {
#pragma omp simd
      for (int64_t j = 0; j < oc; ++j) o[j] = gelu_value(pre[j]);
    }
  }
}

template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     const T* pre_act, int64_t n, int64_t c, int64_t oc, WeightLayout layout, Activation act) {
  const T* dpre = dout;
  std::unique_ptr<T[]> dpre_buffer;  // uninitialized: every element is written below
  if (act != Activation::none) {
    dpre_buffer.reset(new T[size_t(n * oc)]);
    T* d = dpre_buffer.get();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n * oc; ++i) d[i] = gelu_derivative(pre_act[i]) * dout[i];
    dpre = d;
  }
  if (dbias) add_column_sums(dbias, dpre, n, oc);
  if (layout == WeightLayout::out_in) {
    // W (OC, C): dinp = dpre @ W, dW += dpre^T @ inp
    if (dinp) gemm<T>(false, false, n, c, oc, T(1), dpre, oc, weight, c, T(0), dinp, c);
    if (dweight) gemm<T>(true, false, oc, c, n, T(1), dpre, oc, inp, c, T(1), dweight, c);
  } else {
    // W (C, OC): dinp = dpre @ W^T, dW += inp^T @ dpre
    if (dinp) gemm<T>(false, true, n, c, oc, T(1), dpre, oc, weight, oc, T(0), dinp, c);
    if (dweight) gemm<T>(true, false, c, oc, n, T(1), inp, c, dpre, oc, T(1), dweight, oc);
  }
}

#define ZT_INSTANTIATE(T)                                                                                    \
  template void matmul_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,           \
                                  WeightLayout, Activation);                                                 \
  template void matmul_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                   int64_t, WeightLayout, Activation);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
