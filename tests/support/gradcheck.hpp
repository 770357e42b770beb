// Helpers for the op tests: seeded random tensors, comparisons by tensor norm, the
// central-difference gradient check, and error-message checks. Header-only.
//
// The gradient check follows ggml's test-backend-ops: for an op with outputs `out`, fix a random
// R of out's shape, let L = sum(out ⊙ R), run the op's backward with dout = R, and compare every
// gradient element with (L(x + h) - L(x - h)) / 2h, all in f64.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "zt/core/error.hpp"
#include "zt/core/tensor.hpp"

namespace zt::test {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  int32_t integer(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi - 1)(gen_); }  // [lo, hi)
  uint32_t bits() { return uint32_t(gen_()); }

 private:
  std::mt19937_64 gen_;
};

// A tensor of uniform values in [lo, hi), rounded to dtype.
inline Tensor random_tensor(const Shape& shape, DType dtype, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  if (dtype == DType::f64) {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = rng.uniform(lo, hi);
  } else if (dtype == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float(rng.uniform(lo, hi));
  } else {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = float(rng.uniform(lo, hi));
    t = Tensor::from_floats(shape, v, dtype);
  }
  return t;
}

// i32 ids in [lo, hi).
inline Tensor random_ids(int64_t n, int32_t lo, int32_t hi, Rng& rng) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = rng.integer(lo, hi);
  return Tensor::from_ints({n}, ids);
}

// Every element in double (any float dtype).
inline std::vector<double> values(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::f64) {
    const double* p = t.data<double>();
    v.assign(p, p + t.numel());
  } else if (t.dtype() == DType::f32) {
    const float* p = t.data<float>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  } else {
    const std::vector<float> f = t.to_floats();
    for (size_t i = 0; i < v.size(); ++i) v[i] = f[i];
  }
  return v;
}

// A tensor of dtype holding v (rounded).
inline Tensor tensor_of(const Shape& shape, const std::vector<double>& v, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  EXPECT_EQ(int64_t(v.size()), t.numel());
  if (dtype == DType::f64) {
    std::copy(v.begin(), v.end(), t.data<double>());
  } else {
    float* p = t.data<float>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = float(v[i]);
  }
  return t;
}

inline double sum_product(const Tensor& a, const Tensor& b) {  // sum(a ⊙ b) in double
  const std::vector<double> x = values(a), y = values(b);
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

inline double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// ||actual - expected|| / ||expected|| (with a floor, so that a zero expectation asks for ~zero).
inline double relative_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double diff = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double d = actual[i] - expected[i];
    diff += d * d;
  }
  const double e = norm(expected);
  return std::sqrt(diff) / (e > 1e-12 ? e : 1e-12);
}

// Gtest assertion: relative error by norm within tol; on failure, names the worst element.
inline ::testing::AssertionResult close_by_norm(const std::vector<double>& actual,
                                                const std::vector<double>& expected, double tol) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << "sizes differ: " << actual.size() << " vs " << expected.size();
  const double err = relative_error(actual, expected);
  if (err <= tol && std::isfinite(err)) return ::testing::AssertionSuccess();
  size_t worst = 0;
  double worst_diff = -1;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double d = std::isnan(actual[i]) ? INFINITY : std::fabs(actual[i] - expected[i]);
    if (d > worst_diff) worst_diff = d, worst = i;
  }
  return ::testing::AssertionFailure() << "relative error " << err << " > " << tol << "; worst element " << worst
                                       << ": " << actual[worst] << " vs expected " << expected[worst]
                                       << " (norm of expected " << norm(expected) << ")";
}

inline ::testing::AssertionResult close_by_norm(const Tensor& actual, const std::vector<double>& expected,
                                                double tol) {
  return close_by_norm(values(actual), expected, tol);
}

inline ::testing::AssertionResult close_by_norm(const Tensor& actual, const Tensor& expected, double tol) {
  return close_by_norm(values(actual), values(expected), tol);
}

// Runs fn with the OpenMP thread count set to n, restoring the previous count after.
template <class Fn>
void with_threads(int n, Fn&& fn) {
  const int previous = omp_get_max_threads();
  omp_set_num_threads(n);
  try {
    fn();
  } catch (...) {
    omp_set_num_threads(previous);
    throw;
  }
  omp_set_num_threads(previous);
}

// One tensor whose gradient is checked: value (f64) is perturbed in place by the finite
// differences; the backward writes dL/dvalue into grad (f64).
struct GradTensor {
  std::string name;
  Tensor value;
  Tensor grad;
  bool accumulates;  // parameter gradients accumulate (+=); input gradients are overwritten
};

// dL/dx by central differences: (L(x + h) - L(x - h)) / 2h for every element of x.
inline std::vector<double> numeric_gradient(const Tensor& x, const std::function<double()>& loss, double h) {
  double* p = x.data<double>();
  std::vector<double> g(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double plus = loss();
    p[i] = saved - h;
    const double minus = loss();
    p[i] = saved;
    g[size_t(i)] = (plus - minus) / (2 * h);
  }
  return g;
}

// loss(): runs the forward on the current values and returns L = sum(out ⊙ R).
// backward(): runs the forward (for whatever it saves) and the backward with dout = R.
// Checks every gradient against finite differences, then the accumulation contract: grads of
// parameters are added to what they held (a second backward gives twice the gradient), grads of
// inputs are overwritten (prefilled garbage is gone, a second backward gives the same).
inline void check_gradients(const std::vector<GradTensor>& tensors, const std::function<double()>& loss,
                            const std::function<void()>& backward, double tol = 1e-6, double h = 1e-6) {
  Rng rng(0x9e3779b97f4a7c15ull);
  std::vector<std::vector<double>> prefill;
  for (const GradTensor& t : tensors) {
    EXPECT_EQ(t.value.dtype(), DType::f64) << t.name;
    EXPECT_EQ(t.grad.shape(), t.value.shape()) << t.name;
    std::vector<double> fill(static_cast<size_t>(t.grad.numel()));
    for (double& x : fill) x = t.accumulates ? rng.uniform(-1, 1) : 1e3;
    std::copy(fill.begin(), fill.end(), t.grad.data<double>());
    prefill.push_back(std::move(fill));
  }
  auto gradient = [&](size_t k) {  // what the backward contributed since the prefill
    std::vector<double> g = values(tensors[k].grad);
    if (tensors[k].accumulates)
      for (size_t i = 0; i < g.size(); ++i) g[i] -= prefill[k][i];
    return g;
  };

  backward();
  std::vector<std::vector<double>> analytic;
  for (size_t k = 0; k < tensors.size(); ++k) analytic.push_back(gradient(k));

  for (size_t k = 0; k < tensors.size(); ++k) {
    // Thousands of tiny forwards: one thread, so that a loaded machine does not stall them at
    // OpenMP barriers (the threaded paths run in the backward calls and in their own tests).
    std::vector<double> numeric;
    with_threads(1, [&] { numeric = numeric_gradient(tensors[k].value, loss, h); });
    EXPECT_GT(norm(numeric), 0.0) << tensors[k].name << ": the loss does not depend on it";
    EXPECT_TRUE(close_by_norm(analytic[k], numeric, tol)) << "gradient of " << tensors[k].name;
  }

  backward();
  for (size_t k = 0; k < tensors.size(); ++k) {
    std::vector<double> expected = analytic[k];
    if (tensors[k].accumulates)
      for (double& x : expected) x *= 2;
    EXPECT_TRUE(close_by_norm(gradient(k), expected, 1e-12))
        << "second backward into " << tensors[k].name
        << (tensors[k].accumulates ? " must accumulate (+=)" : " must overwrite");
  }
}

// Expects fn to throw zt::Error whose message contains every one of parts.
template <class Fn>
::testing::AssertionResult throws_error_naming(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.message();
    for (const std::string& part : parts) {
      if (message.find(part) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << message << "\" does not name \"" << part << "\"";
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-zt exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace zt::test
