// matmul with its bias and GELU epilogue, both weight layouts: forward against a naive loop,
// backward against finite differences, argument errors.
// Letters: N rows, C input channels, OC output channels.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <ostream>
#include <string>
#include <tuple>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::ops {
// How gtest names the parameters of a failing case.
static void PrintTo(WeightLayout layout, std::ostream* os) { *os << (layout == WeightLayout::out_in ? "out_in" : "in_out"); }
static void PrintTo(Activation act, std::ostream* os) { *os << (act == Activation::none ? "none" : "gelu_tanh"); }
}  // namespace zt::ops

namespace zt {
namespace {

using ops::Activation;
using ops::WeightLayout;
using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

Shape weight_shape(WeightLayout layout, int64_t c, int64_t oc) {
  return layout == WeightLayout::out_in ? Shape{oc, c} : Shape{c, oc};
}

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

struct MatmulRef {
  std::vector<double> out, pre_act;
};

// out[n][o] = act(sum_c inp[n][c] * W(o, c) + bias[o]), W(o, c) read by layout.
MatmulRef naive_matmul(const Tensor& inp, const Tensor& weight, const Tensor& bias, WeightLayout layout,
                       Activation act) {
  const int64_t n = inp.size(0), c = inp.size(1);
  const int64_t oc = layout == WeightLayout::out_in ? weight.size(0) : weight.size(1);
  const std::vector<double> x = values(inp), w = values(weight);
  const std::vector<double> b = bias.defined() ? values(bias) : std::vector<double>(size_t(oc), 0.0);
  MatmulRef r{std::vector<double>(size_t(n * oc)), std::vector<double>(size_t(n * oc))};
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < oc; ++o) {
      double s = b[size_t(o)];
      for (int64_t k = 0; k < c; ++k) {
        const double wv = layout == WeightLayout::out_in ? w[size_t(o * c + k)] : w[size_t(k * oc + o)];
        s += x[size_t(i * c + k)] * wv;
      }
      r.pre_act[size_t(i * oc + o)] = s;
      r.out[size_t(i * oc + o)] = act == Activation::gelu_tanh ? gelu_tanh(s) : s;
    }
  }
  return r;
}

std::string layout_name(WeightLayout layout) { return layout == WeightLayout::out_in ? "out_in" : "in_out"; }

using MatmulCase = std::tuple<WeightLayout, bool, Activation>;  // layout, has bias, activation

class MatmulTest : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulTest, ForwardMatchesNaiveLoop) {
  const auto [layout, has_bias, act] = GetParam();
  Rng rng(11);
  // Sizes with odd N and C that is not a multiple of 8, and one larger, BLAS-blocked size.
  for (const auto& [n, c, oc] : {std::tuple<int64_t, int64_t, int64_t>{7, 13, 5}, {33, 70, 45}, {64, 128, 96}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " C=" << c << " OC=" << oc);
      const Tensor inp = random_tensor({n, c}, dtype, rng);
      const Tensor weight = random_tensor(weight_shape(layout, c, oc), dtype, rng);
      const Tensor bias = has_bias ? random_tensor({oc}, dtype, rng) : Tensor();
      const Tensor out = Tensor::empty({n, oc}, dtype);
      const Tensor pre_act = act == Activation::none ? Tensor() : Tensor::empty({n, oc}, dtype);
      ops::matmul_forward(out, pre_act, inp, weight, bias, layout, act);
      const MatmulRef ref = naive_matmul(inp, weight, bias, layout, act);
      const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(close_by_norm(out, ref.out, tol));
      if (pre_act.defined()) {
        EXPECT_TRUE(close_by_norm(pre_act, ref.pre_act, tol));
      }
      // With a residual: out = residual + the same product.
      const Tensor residual = random_tensor({n, oc}, dtype, rng), with = Tensor::empty({n, oc}, dtype);
      ops::matmul_forward(with, pre_act, inp, weight, bias, layout, act, residual);
      std::vector<double> expected = ref.out;
      const std::vector<double> r = values(residual);
      for (size_t i = 0; i < expected.size(); ++i) expected[i] += r[i];
      EXPECT_TRUE(close_by_norm(with, expected, tol));
    }
  }
}

TEST_P(MatmulTest, BackwardMatchesFiniteDifferences) {
  const auto [layout, has_bias, act] = GetParam();
  const int64_t n = 5, c = 7, oc = 6;
  Rng rng(12);
  const Tensor inp = random_tensor({n, c}, DType::f64, rng);
  const Tensor weight = random_tensor(weight_shape(layout, c, oc), DType::f64, rng);
  const Tensor bias = has_bias ? random_tensor({oc}, DType::f64, rng) : Tensor();
  const Tensor r = random_tensor({n, oc}, DType::f64, rng);
  const Tensor out = Tensor::empty({n, oc}, DType::f64);
  const Tensor pre_act = act == Activation::none ? Tensor() : Tensor::empty({n, oc}, DType::f64);
  const Tensor dinp = Tensor::empty(inp.shape(), DType::f64);
  const Tensor dweight = Tensor::empty(weight.shape(), DType::f64);
  const Tensor dbias = has_bias ? Tensor::empty({oc}, DType::f64) : Tensor();

  auto loss = [&] {
    ops::matmul_forward(out, pre_act, inp, weight, bias, layout, act);
    return test::sum_product(out, r);
  };
  auto backward = [&] {
    ops::matmul_forward(out, pre_act, inp, weight, bias, layout, act);
    ops::matmul_backward(dinp, dweight, dbias, r, inp, weight, pre_act, layout, act);
  };
  std::vector<test::GradTensor> tensors = {{"inp", inp, dinp, false}, {"weight", weight, dweight, true}};
  if (has_bias) tensors.push_back({"bias", bias, dbias, true});
  test::check_gradients(tensors, loss, backward);
}

INSTANTIATE_TEST_SUITE_P(Kernels, MatmulTest,
                         ::testing::Combine(::testing::Values(WeightLayout::out_in, WeightLayout::in_out),
                                            ::testing::Bool(),
                                            ::testing::Values(Activation::none, Activation::gelu_tanh)),
                         [](const ::testing::TestParamInfo<MatmulCase>& info) {
                           return layout_name(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_bias" : "_nobias") +
                                  (std::get<2>(info.param) == Activation::none ? "_none" : "_gelu");
                         });

// The backward computes only the gradients it is given: with dinp undefined (the first layer),
// the weight and bias gradients are the same as when everything is asked for.
TEST(Matmul, BackwardSkipsUndefinedGradients) {
  Rng rng(13);
  const int64_t n = 9, c = 10, oc = 11;
  const Tensor inp = random_tensor({n, c}, DType::f32, rng), weight = random_tensor({oc, c}, DType::f32, rng);
  const Tensor bias = random_tensor({oc}, DType::f32, rng), dout = random_tensor({n, oc}, DType::f32, rng);
  const Tensor dinp = Tensor::zeros({n, c}, DType::f32);
  const Tensor dw_all = Tensor::zeros({oc, c}, DType::f32), db_all = Tensor::zeros({oc}, DType::f32);
  ops::matmul_backward(dinp, dw_all, db_all, dout, inp, weight, Tensor(), WeightLayout::out_in, Activation::none);
  const Tensor dw = Tensor::zeros({oc, c}, DType::f32), db = Tensor::zeros({oc}, DType::f32);
  ops::matmul_backward(Tensor(), dw, db, dout, inp, weight, Tensor(), WeightLayout::out_in, Activation::none);
  EXPECT_EQ(values(dw), values(dw_all));
  EXPECT_EQ(values(db), values(db_all));
  const Tensor dinp_only = Tensor::empty({n, c}, DType::f32);
  ops::matmul_backward(dinp_only, Tensor(), Tensor(), dout, inp, weight, Tensor(), WeightLayout::out_in,
                       Activation::none);
  EXPECT_EQ(values(dinp_only), values(dinp));
}

// GradInto::overwrite: the weight gradient written over whatever its buffer held (here NaN), the
// same values as added to zeros; the bias gradient still added to what it holds.
TEST(Matmul, BackwardOverwritesTheWeightGradientWhenAsked) {
  Rng rng(14);
  const int64_t n = 9, c = 10, oc = 11;
  for (WeightLayout layout : {WeightLayout::out_in, WeightLayout::in_out}) {
    const Tensor inp = random_tensor({n, c}, DType::f32, rng), weight = random_tensor(weight_shape(layout, c, oc), DType::f32, rng);
    const Tensor dout = random_tensor({n, oc}, DType::f32, rng);
    const Tensor dinp = Tensor::empty({n, c}, DType::f32), dw_added = Tensor::zeros(weight.shape(), DType::f32);
    const Tensor db_added = Tensor::empty({oc}, DType::f32);
    db_added.fill_(1.0);
    ops::matmul_backward(dinp, dw_added, db_added, dout, inp, weight, Tensor(), layout, Activation::none);
    const Tensor dw = Tensor::empty(weight.shape(), DType::f32), db = Tensor::empty({oc}, DType::f32);
    dw.fill_(std::nan(""));
    db.fill_(1.0);
    ops::matmul_backward(dinp, dw, db, dout, inp, weight, Tensor(), layout, Activation::none, Activation::none,
                         Tensor(), ops::GradInto::overwrite);
    EXPECT_EQ(values(dw), values(dw_added)) << layout_name(layout);
    EXPECT_EQ(values(db), values(db_added)) << layout_name(layout);
  }
}

TEST(Matmul, ArgumentErrorsNameTheOpAndArgument) {
  const Tensor inp = Tensor::zeros({4, 3}, DType::f32), w = Tensor::zeros({5, 3}, DType::f32);
  const Tensor out = Tensor::zeros({4, 5}, DType::f32), b = Tensor::zeros({5}, DType::f32);
  using test::throws_error_naming;
  // The weight is (OC, C) for out_in; the same tensor read as in_out (C, OC) is the wrong shape.
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w, b, WeightLayout::in_out, Activation::none); },
      {"matmul_forward", "weight", "(3, 5)"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w, Tensor::zeros({4}, DType::f32), WeightLayout::out_in,
                                Activation::none); },
      {"matmul_forward", "bias"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w, b, WeightLayout::out_in, Activation::gelu_tanh); },
      {"matmul_forward", "pre_act"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w, b, WeightLayout::out_in, Activation::none, b); },
      {"matmul_forward", "residual"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w, b, WeightLayout::out_in, Activation::none, out); },
      {"matmul_forward", "residual", "out itself"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp, w.to(DType::f64), b, WeightLayout::out_in, Activation::none); },
      {"matmul_forward", "weight", "f64"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(Tensor::zeros({4, 5}, DType::bf16), Tensor(), inp, w, b, WeightLayout::out_in,
                                Activation::none); },
      {"matmul_forward", "out", "bf16"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_forward(out, Tensor(), inp.reshape({12}), w, b, WeightLayout::out_in, Activation::none); },
      {"matmul_forward", "inp"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_backward(inp, Tensor::zeros({3, 5}, DType::f32), b, out, inp, w, Tensor(),
                                 WeightLayout::out_in, Activation::none); },
      {"matmul_backward", "dweight"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_backward(Tensor::zeros({4, 4}, DType::f32), w, b, out, inp, w, Tensor(),
                                 WeightLayout::out_in, Activation::none); },
      {"matmul_backward", "dinp"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_backward(inp, w, Tensor::zeros({5}, DType::f64), out, inp, w, Tensor(),
                                 WeightLayout::out_in, Activation::none); },
      {"matmul_backward", "dbias"}));
  EXPECT_TRUE(throws_error_naming(
      [&] { ops::matmul_backward(inp, w, b, Tensor::zeros({4, 6}, DType::f32), inp, w, Tensor(),
                                 WeightLayout::out_in, Activation::none); },
      {"matmul_backward"}));
}

}  // namespace
}  // namespace zt
