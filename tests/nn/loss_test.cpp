// Losses read later (forward_queued, take_queued) give what forward gives at once: the same
// values in call order, the same gradients, and nothing left over after a take.
#include <gtest/gtest.h>

#include <vector>

#include "zt/core/random.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/nn/loss.hpp"

namespace zt {
namespace {

Tensor random_logits(int64_t n, int64_t v, Rng& rng) {
  Tensor t = Tensor::empty({n, v}, DType::f32);
  fill_uniform(t, -4, 4, rng);
  return t;
}

Tensor random_targets(int64_t n, int64_t v, Rng& rng) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 5 == 2 ? ops::kIgnoreIndex : int32_t(rng.below(uint64_t(v)));
  return Tensor::from_ints({n}, t);
}

TEST(QueuedLoss, CrossEntropyGivesForwardsValuesAndGradientsInOrder) {
  Rng rng(61);
  const Tensor logits_a = random_logits(12, 9, rng), targets_a = random_targets(12, 9, rng);
  const Tensor logits_b = random_logits(7, 9, rng), targets_b = random_targets(7, 9, rng);

  nn::CrossEntropyLoss at_once;
  const double a = at_once.forward(logits_a, targets_a, 0.5);
  const std::vector<float> grad_a = at_once.backward().to_floats();
  const double b = at_once.forward(logits_b, targets_b, 0.5);

  nn::CrossEntropyLoss queued;
  queued.forward_queued(logits_a, targets_a, 0.5);
  EXPECT_EQ(queued.backward().to_floats(), grad_a);
  queued.forward_queued(logits_b, targets_b, 0.5);
  queued.backward();
  const std::vector<double> values = queued.take_queued();
  ASSERT_EQ(values.size(), 2u);
  EXPECT_DOUBLE_EQ(values[0], a);
  EXPECT_DOUBLE_EQ(values[1], b);
  EXPECT_NE(a, b);
  EXPECT_TRUE(queued.take_queued().empty());
}

TEST(QueuedLoss, LossesWithoutADeviceValueComputeAtOnce) {
  Rng rng(62);
  Tensor pred = Tensor::empty({5, 3}, DType::f32), target = Tensor::empty({5, 3}, DType::f32);
  fill_uniform(pred, -1, 1, rng);
  fill_uniform(target, -1, 1, rng);
  nn::MSELoss loss;
  const double expected = loss.forward(pred, target);
  loss.backward();
  loss.forward_queued(pred, target);
  loss.backward();
  const std::vector<double> values = loss.take_queued();
  ASSERT_EQ(values.size(), 1u);
  EXPECT_DOUBLE_EQ(values[0], expected);
  EXPECT_GT(expected, 0.0);
}

}  // namespace
}  // namespace zt
