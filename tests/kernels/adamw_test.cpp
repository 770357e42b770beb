// AdamW against a hand-written reference with torch.optim.AdamW's arithmetic, over several steps,
// with and without weight decay and with a gradient scale.
#include <gtest/gtest.h>

#include <cmath>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

struct AdamWState {
  std::vector<double> param, exp_avg, exp_avg_sq;
};

// torch.optim.AdamW, single-tensor path: decay, lerp the first moment, the second moment, then
// the bias-corrected step.
void reference_adamw_step(AdamWState& s, const std::vector<double>& grad, const ops::AdamWParams& p) {
  const double step_size = p.lr / (1.0 - std::pow(p.beta1, double(p.step)));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(p.beta2, double(p.step)));
  for (size_t i = 0; i < grad.size(); ++i) {
    const double g = grad[i];
    s.param[i] *= 1.0 - p.lr * p.weight_decay;
    s.exp_avg[i] += (1.0 - p.beta1) * (g - s.exp_avg[i]);
    s.exp_avg_sq[i] = p.beta2 * s.exp_avg_sq[i] + (1.0 - p.beta2) * g * g;
    const double denom = std::sqrt(s.exp_avg_sq[i]) / bias_correction2_sqrt + p.eps;
    s.param[i] -= step_size * s.exp_avg[i] / denom;
  }
}

// Runs `steps` steps of the kernel and the reference on the same gradients; the kernel sees the
// gradients multiplied by 1/grad_scale and undoes it with grad_scale.
void check_against_reference(ops::AdamWParams p, double grad_scale, int steps, uint64_t seed) {
  Rng rng(seed);
  const int64_t n = 1037;  // not a multiple of any vector width
  const Tensor param = random_tensor({n}, DType::f32, rng);
  const Tensor exp_avg = Tensor::zeros({n}, DType::f32), exp_avg_sq = Tensor::zeros({n}, DType::f32);
  AdamWState ref{values(param), std::vector<double>(size_t(n), 0.0), std::vector<double>(size_t(n), 0.0)};
  for (int step = 1; step <= steps; ++step) {
    SCOPED_TRACE(testing::Message() << "step " << step);
    std::vector<double> g(static_cast<size_t>(n));
    for (size_t i = 0; i < g.size(); ++i) {
      // Mixed magnitudes: tiny gradients (where eps matters), zeros, and ordinary ones.
      const double mag = i % 7 == 0 ? 1e-9 : (i % 11 == 0 ? 0.0 : 1e-1);
      g[i] = mag * rng.uniform(-1, 1);
    }
    const Tensor grad = Tensor::empty({n}, DType::f32);
    for (int64_t i = 0; i < n; ++i) {
      // The reference sees exactly the gradient the kernel computes from the scaled one.
      const float stored = float(g[size_t(i)] / grad_scale);
      grad.data<float>()[i] = stored;
      g[size_t(i)] = double(stored * float(grad_scale));
    }
    p.step = step;
    p.lr *= 0.9;  // a schedule: the lr changes from step to step
    ops::adamw_step(param, grad, exp_avg, exp_avg_sq, p, grad_scale);
    reference_adamw_step(ref, g, p);
    const std::vector<double> got = values(param);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref.param[i]));
    EXPECT_LE(worst, 1e-6) << "largest parameter difference";
    EXPECT_TRUE(close_by_norm(param, ref.param, 1e-6));
    EXPECT_TRUE(close_by_norm(exp_avg, ref.exp_avg, 1e-6));
    EXPECT_TRUE(close_by_norm(exp_avg_sq, ref.exp_avg_sq, 1e-6));
  }
}

TEST(AdamW, MatchesTorchArithmeticOverSteps) {
  ops::AdamWParams p;
  p.lr = 1e-2;
  p.beta1 = 0.9;
  p.beta2 = 0.95;
  p.eps = 1e-8;
  p.weight_decay = 0.1;
  check_against_reference(p, 1.0, 6, 71);
}

TEST(AdamW, MatchesWithoutWeightDecayAndDefaultBetas) {
  ops::AdamWParams p;
  p.lr = 3e-3;
  check_against_reference(p, 1.0, 5, 72);
}

TEST(AdamW, GradScaleMultipliesTheGradientFirst) {
  ops::AdamWParams p;
  p.lr = 1e-2;
  p.weight_decay = 0.01;
  check_against_reference(p, 1.0 / 1024.0, 4, 73);  // loss-scale unscaling: exact in binary
  check_against_reference(p, 0.3, 4, 74);           // clipping coefficient
}

TEST(AdamW, FirstStepMovesByLrTimesSign) {
  // After bias correction the first update is lr * g / (|g| + eps) = lr * sign(g) for |g| >> eps.
  ops::AdamWParams p;
  p.lr = 0.5;
  const Tensor param = Tensor::from_floats({3}, {1, 1, 1}), grad = Tensor::from_floats({3}, {2e-3f, -5.f, 0.f});
  const Tensor m = Tensor::zeros({3}, DType::f32), v = Tensor::zeros({3}, DType::f32);
  ops::adamw_step(param, grad, m, v, p);
  EXPECT_NEAR(param.data<float>()[0], 0.5f, 1e-5);
  EXPECT_NEAR(param.data<float>()[1], 1.5f, 1e-6);
  EXPECT_EQ(param.data<float>()[2], 1.0f);  // zero gradient, no decay: untouched
}

// A queued scale multiplies grad_scale as the kernels do (in f32); a non-finite one leaves every
// buffer as it was, param_out included.
TEST(AdamW, QueuedScaleMultipliesOrSkipsTheStep) {
  Rng rng(75);
  ops::AdamWParams p;
  p.lr = 1e-2, p.weight_decay = 0.1, p.step = 2;
  const Tensor param = random_tensor({1003}, DType::f32, rng), grad = random_tensor({1003}, DType::bf16, rng);
  const Tensor m = random_tensor({1003}, DType::f32, rng, -0.1, 0.1), v = random_tensor({1003}, DType::f32, rng, 0.0, 0.01);
  const Tensor out = Tensor::zeros({1003}, DType::bf16);
  const Tensor scale = Tensor::from_floats({1}, {0.3f});
  std::vector<Tensor> plain = {param.clone(), m.clone(), v.clone(), out.clone()};
  std::vector<Tensor> queued = {param.clone(), m.clone(), v.clone(), out.clone()};
  ops::adamw_step(plain[0], grad, plain[1], plain[2], p, double(0.5f * 0.3f), plain[3]);
  ops::adamw_step(queued[0], grad, queued[1], queued[2], p, 0.5, queued[3], scale);
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_EQ(values(queued[i]), values(plain[i])) << "buffer " << i;
  for (float bad : {std::nanf(""), INFINITY}) {
    scale.data<float>()[0] = bad;
    std::vector<Tensor> skipped = {param.clone(), m.clone(), v.clone(), out.clone()};
    ops::adamw_step(skipped[0], grad, skipped[1], skipped[2], p, 0.5, skipped[3], scale);
    EXPECT_EQ(values(skipped[0]), values(param)) << bad;
    EXPECT_EQ(values(skipped[1]), values(m)) << bad;
    EXPECT_EQ(values(skipped[2]), values(v)) << bad;
    EXPECT_EQ(values(skipped[3]), values(out)) << bad;
  }
  EXPECT_TRUE(test::throws_error_naming(
      [&] { ops::adamw_step(param, grad, m, v, p, 1.0, Tensor(), Tensor::zeros({1}, DType::f64)); },
      {"adamw_step", "queued_scale", "f64"}));
}

TEST(AdamW, ArgumentErrorsNameTheOpAndArgument) {
  using test::throws_error_naming;
  const Tensor x = Tensor::zeros({4}, DType::f32);
  ops::AdamWParams p;
  EXPECT_TRUE(throws_error_naming([&] { ops::adamw_step(x.to(DType::f64), x, x, x, p); }, {"adamw_step", "param", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::adamw_step(x, Tensor::zeros({5}, DType::f32), x, x, p); },
                                  {"adamw_step", "grad", "(5)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::adamw_step(x, x, Tensor::zeros({4}, DType::bf16), x, p); },
                                  {"adamw_step", "exp_avg", "bf16"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::adamw_step(x, x, x, Tensor::zeros({2, 2}, DType::f32), p); },
                                  {"adamw_step", "exp_avg_sq"}));
  p.step = 0;
  EXPECT_TRUE(throws_error_naming([&] { ops::adamw_step(x, x, x, x, p); }, {"adamw_step", "step"}));
}

}  // namespace
}  // namespace zt
