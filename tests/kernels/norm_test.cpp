// LayerNorm and RMSNorm: forwards (and saved statistics) against naive loops, backwards against
// finite differences, the residual add fused in front (forward) and the residual gradient added
// (backward) against the formulas, argument errors. Letters: N rows, C channels.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

struct NormRef {
  std::vector<double> out, mean, rstd;
};

NormRef naive_layernorm(const Tensor& inp, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t n = inp.size(0), c = inp.size(1);
  const std::vector<double> x = values(inp), w = values(weight);
  const std::vector<double> b = bias.defined() ? values(bias) : std::vector<double>(size_t(c), 0.0);
  NormRef r{std::vector<double>(x.size()), std::vector<double>(size_t(n)), std::vector<double>(size_t(n))};
  for (int64_t i = 0; i < n; ++i) {
    const double* row = x.data() + i * c;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < c; ++j) mean += row[j];
    mean /= double(c);
    for (int64_t j = 0; j < c; ++j) var += (row[j] - mean) * (row[j] - mean);
    var /= double(c);  // biased, as torch
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < c; ++j) r.out[size_t(i * c + j)] = (row[j] - mean) * rstd * w[size_t(j)] + b[size_t(j)];
    r.mean[size_t(i)] = mean;
    r.rstd[size_t(i)] = rstd;
  }
  return r;
}

NormRef naive_rmsnorm(const Tensor& inp, const Tensor& weight, double eps) {
  const int64_t n = inp.size(0), c = inp.size(1);
  const std::vector<double> x = values(inp), w = values(weight);
  NormRef r{std::vector<double>(x.size()), {}, std::vector<double>(size_t(n))};
  for (int64_t i = 0; i < n; ++i) {
    const double* row = x.data() + i * c;
    double ms = 0;
    for (int64_t j = 0; j < c; ++j) ms += row[j] * row[j];
    const double rstd = 1.0 / std::sqrt(ms / double(c) + eps);
    for (int64_t j = 0; j < c; ++j) r.out[size_t(i * c + j)] = row[j] * rstd * w[size_t(j)];
    r.rstd[size_t(i)] = rstd;
  }
  return r;
}

const std::tuple<int64_t, int64_t> kForwardSizes[] = {{1, 5}, {9, 77}, {31, 300}};

TEST(LayerNorm, ForwardMatchesNaiveLoop) {
  Rng rng(21);
  for (const auto& [n, c] : kForwardSizes) {
    for (DType dtype : {DType::f32, DType::f64}) {
      for (bool has_bias : {true, false}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " bias=" << has_bias);
        // An offset mean, so that a one-pass variance would lose digits.
        const Tensor inp = random_tensor({n, c}, dtype, rng, 2.0, 5.0);
        const Tensor weight = random_tensor({c}, dtype, rng, 0.5, 1.5);
        const Tensor bias = has_bias ? random_tensor({c}, dtype, rng) : Tensor();
        const Tensor out = Tensor::empty({n, c}, dtype), mean = Tensor::empty({n}, dtype),
                     rstd = Tensor::empty({n}, dtype);
        ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5);
        const NormRef ref = naive_layernorm(inp, weight, bias, 1e-5);
        const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
        EXPECT_TRUE(close_by_norm(out, ref.out, tol));
        EXPECT_TRUE(close_by_norm(mean, ref.mean, tol));
        EXPECT_TRUE(close_by_norm(rstd, ref.rstd, tol));
      }
    }
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  for (bool has_bias : {true, false}) {
    SCOPED_TRACE(testing::Message() << "bias=" << has_bias);
    const int64_t n = 4, c = 7;
    Rng rng(22);
    const Tensor inp = random_tensor({n, c}, DType::f64, rng), weight = random_tensor({c}, DType::f64, rng);
    const Tensor bias = has_bias ? random_tensor({c}, DType::f64, rng) : Tensor();
    const Tensor r = random_tensor({n, c}, DType::f64, rng);
    const Tensor out = Tensor::empty({n, c}, DType::f64), mean = Tensor::empty({n}, DType::f64),
                 rstd = Tensor::empty({n}, DType::f64);
    const Tensor dinp = Tensor::empty({n, c}, DType::f64), dweight = Tensor::empty({c}, DType::f64),
                 dbias = has_bias ? Tensor::empty({c}, DType::f64) : Tensor();
    auto loss = [&] {
      ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5);
      return test::sum_product(out, r);
    };
    auto backward = [&] {
      ops::layernorm_forward(out, mean, rstd, inp, weight, bias, 1e-5);
      ops::layernorm_backward(dinp, dweight, dbias, r, inp, weight, mean, rstd);
    };
    std::vector<test::GradTensor> tensors = {{"inp", inp, dinp, false}, {"weight", weight, dweight, true}};
    if (has_bias) tensors.push_back({"bias", bias, dbias, true});
    test::check_gradients(tensors, loss, backward);
  }
}

TEST(RMSNorm, ForwardMatchesNaiveLoop) {
  Rng rng(23);
  for (const auto& [n, c] : kForwardSizes) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c);
      const Tensor inp = random_tensor({n, c}, dtype, rng, -3.0, 3.0);
      const Tensor weight = random_tensor({c}, dtype, rng, 0.5, 1.5);
      const Tensor out = Tensor::empty({n, c}, dtype), rstd = Tensor::empty({n}, dtype);
      ops::rmsnorm_forward(out, rstd, inp, weight, 1e-6);
      const NormRef ref = naive_rmsnorm(inp, weight, 1e-6);
      const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(close_by_norm(out, ref.out, tol));
      EXPECT_TRUE(close_by_norm(rstd, ref.rstd, tol));
    }
  }
}

TEST(RMSNorm, BackwardMatchesFiniteDifferences) {
  const int64_t n = 4, c = 7;
  Rng rng(24);
  const Tensor inp = random_tensor({n, c}, DType::f64, rng), weight = random_tensor({c}, DType::f64, rng);
  const Tensor r = random_tensor({n, c}, DType::f64, rng);
  const Tensor out = Tensor::empty({n, c}, DType::f64), rstd = Tensor::empty({n}, DType::f64);
  const Tensor dinp = Tensor::empty({n, c}, DType::f64), dweight = Tensor::empty({c}, DType::f64);
  auto loss = [&] {
    ops::rmsnorm_forward(out, rstd, inp, weight, 1e-6);
    return test::sum_product(out, r);
  };
  auto backward = [&] {
    ops::rmsnorm_forward(out, rstd, inp, weight, 1e-6);
    ops::rmsnorm_backward(dinp, dweight, r, inp, weight, rstd);
  };
  test::check_gradients({{"inp", inp, dinp, false}, {"weight", weight, dweight, true}}, loss, backward);
}

// sum = inp + residual is written (also over inp itself) and normalized as the naive loop does;
// the backward's dinp_add is added to the input gradient.
TEST(Norm, ResidualAddInFrontAndResidualGradientAdded) {
  Rng rng(25);
  const int64_t n = 6, c = 33;
  for (bool rms : {false, true})
    for (bool in_place : {false, true}) {
      SCOPED_TRACE(testing::Message() << (rms ? "rmsnorm" : "layernorm") << (in_place ? " in place" : ""));
      const Tensor inp = random_tensor({n, c}, DType::f64, rng, -2.0, 2.0), residual = random_tensor({n, c}, DType::f64, rng);
      const Tensor weight = random_tensor({c}, DType::f64, rng, 0.5, 1.5), bias = random_tensor({c}, DType::f64, rng);
      std::vector<double> expected_sum = values(inp);
      const std::vector<double> res = values(residual);
      for (size_t i = 0; i < expected_sum.size(); ++i) expected_sum[i] += res[i];
      const Tensor summed = Tensor::from_floats({n, c}, std::vector<float>(n * c), DType::f64);
      for (int64_t i = 0; i < n * c; ++i) summed.data<double>()[i] = expected_sum[size_t(i)];
      const NormRef ref = rms ? naive_rmsnorm(summed, weight, 1e-6) : naive_layernorm(summed, weight, bias, 1e-5);

      const Tensor x = inp.clone(), sum = in_place ? x : Tensor::empty({n, c}, DType::f64);
      const Tensor out = Tensor::empty({n, c}, DType::f64), mean = Tensor::empty({n}, DType::f64),
                   rstd = Tensor::empty({n}, DType::f64);
      if (rms) ops::rmsnorm_forward_residual(sum, out, rstd, x, residual, weight, 1e-6);
      else ops::layernorm_forward_residual(sum, out, mean, rstd, x, residual, weight, bias, 1e-5);
      EXPECT_TRUE(close_by_norm(sum, expected_sum, 1e-15));
      EXPECT_TRUE(close_by_norm(out, ref.out, 1e-12));

      const Tensor dout = random_tensor({n, c}, DType::f64, rng), dadd = random_tensor({n, c}, DType::f64, rng);
      const Tensor plain = Tensor::empty({n, c}, DType::f64), plus = Tensor::empty({n, c}, DType::f64);
      if (rms) {
        ops::rmsnorm_backward(plain, Tensor(), dout, sum, weight, rstd);
        ops::rmsnorm_backward(plus, Tensor(), dout, sum, weight, rstd, dadd);
      } else {
        ops::layernorm_backward(plain, Tensor(), Tensor(), dout, sum, weight, mean, rstd);
        ops::layernorm_backward(plus, Tensor(), Tensor(), dout, sum, weight, mean, rstd, dadd);
      }
      std::vector<double> expected = values(plain);
      const std::vector<double> a = values(dadd);
      for (size_t i = 0; i < expected.size(); ++i) expected[i] += a[i];
      EXPECT_TRUE(close_by_norm(plus, expected, 1e-15));
    }
}

TEST(Norm, ArgumentErrorsNameTheOpAndArgument) {
  using test::throws_error_naming;
  const Tensor x = Tensor::zeros({3, 4}, DType::f32), w = Tensor::zeros({4}, DType::f32);
  const Tensor stat = Tensor::zeros({3}, DType::f32), wrong_c = Tensor::zeros({5}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_forward(x, stat, stat, x, wrong_c, w, 1e-5); },
                                  {"layernorm_forward", "weight", "(5)", "(4)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_forward(x, stat, stat, x, w, wrong_c, 1e-5); },
                                  {"layernorm_forward", "bias"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_forward(x, w, stat, x, w, w, 1e-5); },
                                  {"layernorm_forward", "mean"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_forward(x.to(DType::f64), stat, stat, x, w, w, 1e-5); },
                                  {"layernorm_forward", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_backward(x, w, w, x, x, wrong_c, stat, stat); },
                                  {"layernorm_backward", "weight"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_backward(x, wrong_c, w, x, x, w, stat, stat); },
                                  {"layernorm_backward", "dweight"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_backward(x, w, w, x, x, w, stat, w); },
                                  {"layernorm_backward", "rstd"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_forward(x, stat, x, wrong_c, 1e-6); },
                                  {"rmsnorm_forward", "weight"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_forward(x, stat.to(DType::f64), x, w, 1e-6); },
                                  {"rmsnorm_forward", "rstd", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_backward(x, w, x, x, wrong_c, stat); },
                                  {"rmsnorm_backward", "weight"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_backward(Tensor::zeros({4, 3}, DType::f32), w, x, x, w, stat); },
                                  {"rmsnorm_backward", "dinp"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_forward(x, stat, x.flatten(), w, 1e-6); },
                                  {"rmsnorm_forward", "inp"}));
  const Tensor other = Tensor::zeros({3, 4}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_forward_residual(x, other, stat, x, Tensor::zeros({4, 3}, DType::f32), w, 1e-6); },
                                  {"rmsnorm_forward_residual", "residual"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_forward_residual(wrong_c, other, stat, stat, x, x, w, w, 1e-5); },
                                  {"layernorm_forward_residual", "sum"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::layernorm_backward(x, w, w, x, x, w, stat, stat, Tensor::zeros({3, 5}, DType::f32)); },
                                  {"layernorm_backward", "dinp_add"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rmsnorm_backward(other, w, x, x, w, stat, other); },
                                  {"rmsnorm_backward", "dinp_add", "own"}));
}

}  // namespace
}  // namespace zt
