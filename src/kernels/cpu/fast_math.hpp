// exp and tanh for float written so that the compiler vectorizes them inside `omp simd` loops
// (the C library's expf/tanhf are scalar calls). Accuracy: a few ulp for exp; tanh to ~1e-7
// absolute, which is what its users need (GELU adds 1 to it; softmax normalizes exp).
// The double versions are the C library's: the f64 reference stays exact.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace zt::cpu {

inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  // r = x - n ln2, with ln2 split in two so that the reduction is exact to float precision.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

inline double fast_exp(double x) { return std::exp(x); }

inline float fast_tanh(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }
inline double fast_tanh(double x) { return std::tanh(x); }

}  // namespace zt::cpu
