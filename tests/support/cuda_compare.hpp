// Helpers for the CUDA op tests: inputs drawn on the host in values the dtype under test holds
// exactly (so that the CPU reference sees the same numbers), device copies, NaN-poisoned
// outputs, and the relative error of a device result against the CPU reference. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "zt/core/device.hpp"
#include "zt/core/tensor.hpp"

// Tests that need a GPU report themselves skipped where there is none (CI).
#define ZT_REQUIRE_CUDA()                                                                                 \
  do {                                                                                                    \
    if (!::zt::cuda_is_available())                                                                       \
      GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";        \
  } while (0)

namespace zt::test {

// Relative error by norm allowed for a result computed in dtype against an f32 reference.
inline double tolerance(DType dtype) { return dtype == DType::bf16 ? 1.5e-2 : 2e-5; }

// An f32 host tensor of uniform values in [lo, hi), each exactly representable in dtype.
inline Tensor host_values(const Shape& shape, DType dtype, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor t = random_tensor(shape, DType::f32, rng, lo, hi);
  if (dtype == DType::bf16) t = t.to(DType::bf16).to(DType::f32);
  return t;
}

// A CUDA copy of a host tensor, converted to dtype.
inline Tensor on_device(const Tensor& host, DType dtype) { return host.to(dtype).to(Device::cuda()); }
inline Tensor on_device(const Tensor& host) { return host.to(Device::cuda()); }

// A CUDA tensor whose every element is NaN, so that an element a kernel forgets shows.
inline Tensor poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda());
  t.fill_(NAN);
  return t;
}

// Every element of a tensor on any device, in double.
inline std::vector<double> host_doubles(const Tensor& t) { return values(t.to(Device::cpu())); }

// Whether every element is finite (an unwritten, poisoned element is not).
inline ::testing::AssertionResult all_written(const Tensor& t) {
  const std::vector<double> v = host_doubles(t);
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) return ::testing::AssertionFailure() << "element " << i << " is " << v[i];
  return ::testing::AssertionSuccess();
}

// The device result against the CPU reference, by norm; NaN never passes.
inline ::testing::AssertionResult device_close(const Tensor& device, const Tensor& reference, double tol) {
  return close_by_norm(host_doubles(device), host_doubles(reference), tol);
}

// The largest relative error (by norm) seen per checked output and dtype, for the summary that
// the test program prints at its end.
inline std::map<std::string, double>& worst_errors() {
  static std::map<std::string, double> worst;
  return worst;
}

// The device result against the CPU reference within the dtype's tolerance (or tol), recording
// the error under what.
inline ::testing::AssertionResult expect_close(const std::string& what, const Tensor& device, const Tensor& reference,
                                               DType dtype, double tol = -1) {
  const std::vector<double> got = host_doubles(device), want = host_doubles(reference);
  const double err = relative_error(got, want);
  double& worst = worst_errors()[what + " " + dtype_name(dtype)];
  if (!std::isfinite(err) || err > worst) worst = err;
  return close_by_norm(got, want, tol > 0 ? tol : tolerance(dtype));
}

}  // namespace zt::test
