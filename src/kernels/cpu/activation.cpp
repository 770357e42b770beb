// GELU (tanh approximation) and SwiGLU.
#include <cmath>

#include "activation_math.hpp"
#include "cpu_ops.hpp"

namespace zt::cpu {

template <class T>
void gelu_forward(T* out, const T* inp, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_value(inp[i]);
}

template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dinp[i] = gelu_derivative(inp[i]) * dout[i];
}

template <class T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    out[i] = g / (T(1) + fast_exp(-g)) * up[i];
  }
}

template <class T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T sig = T(1) / (T(1) + fast_exp(-g));
    const T silu = g * sig;
    dup[i] = dout[i] * silu;
    dgate[i] = dout[i] * up[i] * sig * (T(1) + g * (T(1) - sig));
  }
}

#define ZT_INSTANTIATE(T)                                                  \
  template void gelu_forward<T>(T*, const T*, int64_t);                    \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);         \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);        \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
