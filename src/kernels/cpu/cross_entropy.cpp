// Softmax cross-entropy over the vocabulary, fused with its backward.
#include <cmath>

#include "cpu_ops.hpp"
#include "fast_math.hpp"

namespace zt::cpu {

template <class T>
int64_t cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                      double dloss) {
  int64_t counted = 0;
#pragma omp parallel for schedule(static) reduction(+ : counted)
  for (int64_t row = 0; row < n; ++row) {
    const T* x = logits + row * v;
    const int32_t target = targets[row];
    T* dx = dlogits ? dlogits + row * v : nullptr;
    if (target == ops::kIgnoreIndex) {
      losses[row] = T(0);
      if (dx)
        for (int64_t j = 0; j < v; ++j) dx[j] = T(0);
      continue;
    }
    ++counted;
    T max = x[0];
    for (int64_t j = 1; j < v; ++j) max = x[j] > max ? x[j] : max;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < v; ++j) sum += double(fast_exp(x[j] - max));
    const double lse = double(max) + std::log(sum);
    losses[row] = T(lse - double(x[target]));
    if (!dx) continue;
    // Written after the loss is read, so dlogits may alias logits.
    const T scale = T(dloss / sum);
#pragma omp simd
    for (int64_t j = 0; j < v; ++j) dx[j] = fast_exp(x[j] - max) * scale;
    dx[target] -= T(dloss);
  }
  return counted;
}

template int64_t cross_entropy<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, double);
template int64_t cross_entropy<double>(double*, double*, const double*, const int32_t*, int64_t, int64_t, double);

}  // namespace zt::cpu
