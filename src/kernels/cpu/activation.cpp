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
void swiglu_forward(T* out, const T* gate_up, int64_t rows, int64_t hidden) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = gate_up + r * 2 * hidden;
    const T* up = gate + hidden;
    T* y = out + r * hidden;
#pragma omp simd
    for (int64_t i = 0; i < hidden; ++i) {
      const T g = gate[i];
      y[i] = g / (T(1) + fast_exp(-g)) * up[i];
    }
  }
}

template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t rows, int64_t hidden) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = gate_up + r * 2 * hidden;
    const T* up = gate + hidden;
    const T* dy = dout + r * hidden;
    T* dgate = dgate_up + r * 2 * hidden;
    T* dup = dgate + hidden;
#pragma omp simd
    for (int64_t i = 0; i < hidden; ++i) {
      const T g = gate[i];
      const T sig = T(1) / (T(1) + fast_exp(-g));
      const T silu = g * sig;
      const T u = up[i];  // read before dgate_up is written: the two may alias gate_up
      dup[i] = dy[i] * silu;
      dgate[i] = dy[i] * u * sig * (T(1) + g * (T(1) - sig));
    }
  }
}

#define ZT_INSTANTIATE(T)                                                  \
  template void gelu_forward<T>(T*, const T*, int64_t);                    \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);         \
  template void swiglu_forward<T>(T*, const T*, int64_t, int64_t);        \
  template void swiglu_backward<T>(T*, const T*, const T*, int64_t, int64_t);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(double)
#undef ZT_INSTANTIATE

}  // namespace zt::cpu
