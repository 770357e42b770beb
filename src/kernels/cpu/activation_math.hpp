// Scalar GELU (tanh form) and its derivative, shared by the activation and matmul-epilogue kernels.
#pragma once

#include <cmath>

#include "fast_math.hpp"

namespace zt::cpu {

// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
template <class T>
inline T gelu_value(T x) {
  const T k = T(0.7978845608028654);  // sqrt(2/pi)
  const T cube = T(0.044715) * x * x * x;
  return T(0.5) * x * (T(1) + fast_tanh(k * (x + cube)));
}

template <class T>
inline T gelu_derivative(T x) {
  const T k = T(0.7978845608028654);
  const T cube = T(0.044715) * x * x * x;
  const T th = fast_tanh(k * (x + cube));
  const T sech2 = T(1) - th * th;
  return T(0.5) * (T(1) + th) + T(0.5) * x * sech2 * k * (T(1) + T(3) * T(0.044715) * x * x);
}

}  // namespace zt::cpu
