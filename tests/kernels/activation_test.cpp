// GELU (tanh form) and SwiGLU: forwards against the formulas, backwards against finite
// differences, errors. Letters: N rows, H hidden size.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

TEST(Gelu, ForwardMatchesTanhFormula) {
  Rng rng(41);
  for (const Shape& shape : {Shape{1}, Shape{3, 37}, Shape{2, 5, 129}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << shape_str(shape));
      const Tensor inp = random_tensor(shape, dtype, rng, -6.0, 6.0);
      const Tensor out = Tensor::empty(shape, dtype);
      ops::gelu_forward(out, inp);
      std::vector<double> expected = values(inp);
      for (double& x : expected) x = gelu_tanh(x);
      EXPECT_TRUE(close_by_norm(out, expected, dtype == DType::f32 ? 1e-6 : 1e-14));
    }
  }
  // Far tails: gelu(x) -> x for large x, -> 0 for very negative x; no NaN from tanh's overflow.
  const Tensor tails = Tensor::from_floats({4}, {-80.f, -20.f, 20.f, 80.f});
  const Tensor out = Tensor::empty({4}, DType::f32);
  ops::gelu_forward(out, tails);
  EXPECT_EQ(values(out), (std::vector<double>{-0.0, -0.0, 20.0, 80.0}));
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  Rng rng(42);
  const Tensor inp = random_tensor({3, 11}, DType::f64, rng, -4.0, 4.0);
  const Tensor r = random_tensor(inp.shape(), DType::f64, rng);
  const Tensor out = Tensor::empty(inp.shape(), DType::f64), dinp = Tensor::empty(inp.shape(), DType::f64);
  auto loss = [&] {
    ops::gelu_forward(out, inp);
    return test::sum_product(out, r);
  };
  auto backward = [&] { ops::gelu_backward(dinp, r, inp); };
  test::check_gradients({{"inp", inp, dinp, false}}, loss, backward);
}

TEST(SwiGLU, ForwardMatchesSiluTimesUpOfEachRowsHalves) {
  Rng rng(43);
  for (const Shape& shape : {Shape{1, 2}, Shape{7, 90}, Shape{2, 8, 514}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << shape_str(shape));
      const int64_t h = shape.back() / 2, rows = Tensor::empty(shape, dtype).numel() / (2 * h);
      const Tensor gate_up = random_tensor(shape, dtype, rng, -8.0, 8.0);
      Shape out_shape = shape;
      out_shape.back() = h;
      const Tensor out = Tensor::empty(out_shape, dtype);
      ops::swiglu_forward(out, gate_up);
      const std::vector<double> gu = values(gate_up);
      std::vector<double> expected(size_t(rows * h));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < h; ++i)
          expected[size_t(r * h + i)] = silu(gu[size_t(r * 2 * h + i)]) * gu[size_t(r * 2 * h + h + i)];
      EXPECT_TRUE(close_by_norm(out, expected, dtype == DType::f32 ? 1e-6 : 1e-14));
    }
  }
}

TEST(SwiGLU, BackwardMatchesFiniteDifferences) {
  Rng rng(44);
  const Tensor gate_up = random_tensor({4, 18}, DType::f64, rng, -4.0, 4.0);
  const Tensor r = random_tensor({4, 9}, DType::f64, rng);
  const Tensor out = Tensor::empty({4, 9}, DType::f64);
  const Tensor dgate_up = Tensor::empty(gate_up.shape(), DType::f64);
  auto loss = [&] {
    ops::swiglu_forward(out, gate_up);
    return test::sum_product(out, r);
  };
  auto backward = [&] { ops::swiglu_backward(dgate_up, r, gate_up); };
  test::check_gradients({{"gate_up", gate_up, dgate_up, false}}, loss, backward);
}

TEST(SwiGLU, BackwardInPlaceEqualsOutOfPlace) {
  Rng rng(45);
  const Tensor gate_up = random_tensor({5, 34}, DType::f32, rng, -4.0, 4.0), dout = random_tensor({5, 17}, DType::f32, rng);
  const Tensor separate = Tensor::empty(gate_up.shape(), DType::f32);
  ops::swiglu_backward(separate, dout, gate_up);
  const Tensor in_place = gate_up.clone();
  ops::swiglu_backward(in_place, dout, in_place);
  EXPECT_EQ(values(in_place), values(separate));
}

TEST(Activation, ArgumentErrorsNameTheOpAndArgument) {
  using test::throws_error_naming;
  const Tensor x = Tensor::zeros({2, 3}, DType::f32), wrong = Tensor::zeros({3, 2}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::gelu_forward(wrong, x); }, {"gelu_forward", "out", "(3, 2)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::gelu_forward(x.to(DType::f64), x); }, {"gelu_forward", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::gelu_backward(x, wrong, x); }, {"gelu_backward", "dout"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::gelu_backward(wrong, x, x); }, {"gelu_backward", "dinp"}));
  const Tensor gate_up = Tensor::zeros({2, 6}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::swiglu_forward(x, x); }, {"swiglu_forward", "gate_up", "even", "(2, 3)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::swiglu_forward(wrong, gate_up); }, {"swiglu_forward", "out", "(3, 2)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::swiglu_forward(x.to(DType::f64), gate_up); }, {"swiglu_forward", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::swiglu_backward(x, x, gate_up); }, {"swiglu_backward", "dgate_up"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::swiglu_backward(gate_up, wrong, gate_up); }, {"swiglu_backward", "dout"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::gelu_forward(Tensor::zeros({2}, DType::bf16), Tensor::zeros({2}, DType::bf16)); },
                                  {"gelu_forward", "bf16"}));
}

}  // namespace
}  // namespace zt
