// Cross-entropy over the vocabulary, alone and fused with its backward: against logsumexp in
// double, the gradient against finite differences, ignored rows, in-place dlogits, target
// errors. Letters: N rows, V vocabulary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using ops::kIgnoreIndex;
using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

struct CrossEntropyRef {
  std::vector<double> losses, dlogits;
  int64_t counted = 0;
};

CrossEntropyRef naive_cross_entropy(const Tensor& logits, const std::vector<int32_t>& targets, double dloss) {
  const int64_t n = logits.size(0), v = logits.size(1);
  const std::vector<double> x = values(logits);
  CrossEntropyRef r{std::vector<double>(size_t(n), 0.0), std::vector<double>(size_t(n * v), 0.0)};
  for (int64_t i = 0; i < n; ++i) {
    if (targets[size_t(i)] == kIgnoreIndex) continue;
    ++r.counted;
    const double* row = x.data() + i * v;
    const double max = *std::max_element(row, row + v);
    double sum = 0;
    for (int64_t j = 0; j < v; ++j) sum += std::exp(row[j] - max);
    const double lse = max + std::log(sum);
    r.losses[size_t(i)] = lse - row[targets[size_t(i)]];
    for (int64_t j = 0; j < v; ++j)
      r.dlogits[size_t(i * v + j)] = (std::exp(row[j] - lse) - (j == targets[size_t(i)] ? 1.0 : 0.0)) * dloss;
  }
  return r;
}

std::vector<int32_t> targets_with_ignored(int64_t n, int32_t v, Rng& rng) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 3 == 1 ? kIgnoreIndex : rng.integer(0, v);
  return t;
}

TEST(CrossEntropy, ForwardAndFusedMatchLogsumexp) {
  Rng rng(61);
  for (const auto& [n, v] : {std::pair<int64_t, int64_t>{1, 2}, {7, 37}, {16, 1001}}) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " N=" << n << " V=" << v);
      // Wide logits: a softmax without the max subtraction overflows exp in f32.
      const Tensor logits = random_tensor({n, v}, dtype, rng, -60.0, 60.0);
      const std::vector<int32_t> t = targets_with_ignored(n, int32_t(v), rng);
      const Tensor targets = Tensor::from_ints({n}, t);
      const double dloss = 1.0 / 3.0;
      const CrossEntropyRef ref = naive_cross_entropy(logits, t, dloss);
      const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;

      const Tensor losses = Tensor::empty({n}, dtype);
      EXPECT_EQ(ops::cross_entropy_forward(losses, logits, targets), ref.counted);
      EXPECT_TRUE(close_by_norm(losses, ref.losses, tol));

      const Tensor fused_losses = Tensor::empty({n}, dtype), dlogits = Tensor::empty({n, v}, dtype);
      dlogits.fill_(7.0);  // ignored rows must come back as zeros
      EXPECT_EQ(ops::cross_entropy_fused(fused_losses, dlogits, logits, targets, dloss), ref.counted);
      EXPECT_EQ(values(fused_losses), values(losses));
      EXPECT_TRUE(close_by_norm(dlogits, ref.dlogits, tol));
      const std::vector<double> g = values(dlogits);
      for (int64_t i = 0; i < n; ++i) {
        double row_sum = 0;
        for (int64_t j = 0; j < v; ++j) row_sum += g[size_t(i * v + j)];
        EXPECT_NEAR(row_sum, 0.0, dtype == DType::f32 ? 1e-6 : 1e-14) << "row " << i;  // softmax - onehot sums to 0
        if (t[size_t(i)] == kIgnoreIndex) {
          for (int64_t j = 0; j < v; ++j) ASSERT_EQ(g[size_t(i * v + j)], 0.0) << "ignored row " << i;
        }
      }

      // In place: dlogits may be the logits tensor itself.
      const Tensor in_place = logits.clone(), in_place_losses = Tensor::empty({n}, dtype);
      ops::cross_entropy_fused(in_place_losses, in_place, in_place, targets, dloss);
      EXPECT_EQ(values(in_place), values(dlogits));
      EXPECT_EQ(values(in_place_losses), values(losses));
    }
  }
}

// The counting form: the count and grad_scale / count written beside the losses, and the same
// losses and gradient as the fused op given that dloss; every row ignored gives a zero factor.
TEST(CrossEntropy, CountingFormMatchesTheFusedOpWithTheHostsCount) {
  Rng rng(77);
  const int64_t n = 29, v = 40;
  const Tensor logits = random_tensor({n, v}, DType::f32, rng, -5.0, 5.0);
  const std::vector<int32_t> t = targets_with_ignored(n, int32_t(v), rng);
  const Tensor targets = Tensor::from_ints({n}, t);
  int64_t count = 0;
  for (int32_t x : t) count += x != kIgnoreIndex;
  ASSERT_GT(count, 0);
  ASSERT_LT(count, n);
  const double grad_scale = 0.75;
  const Tensor losses = Tensor::empty({n}, DType::f32), dlogits = Tensor::empty({n, v}, DType::f32);
  ops::cross_entropy_fused(losses, dlogits, logits, targets, grad_scale / double(count));
  const Tensor c_losses = Tensor::empty({n}, DType::f32), c_dlogits = Tensor::empty({n, v}, DType::f32);
  const Tensor count_and_dloss = Tensor::empty({2}, DType::f32);
  ops::cross_entropy_fused_counting(c_losses, c_dlogits, logits, targets, grad_scale, count_and_dloss);
  EXPECT_EQ(values(count_and_dloss), (std::vector<double>{double(count), double(float(grad_scale / double(count)))}));
  EXPECT_EQ(values(c_losses), values(losses));
  EXPECT_EQ(values(c_dlogits), values(dlogits));

  const Tensor all_ignored = Tensor::from_ints({n}, std::vector<int32_t>(size_t(n), kIgnoreIndex));
  ops::cross_entropy_fused_counting(c_losses, c_dlogits, logits, all_ignored, grad_scale, count_and_dloss);
  EXPECT_EQ(values(count_and_dloss), (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(values(c_dlogits), std::vector<double>(size_t(n * v), 0.0));
  EXPECT_TRUE(test::throws_error_naming(
      [&] { ops::cross_entropy_fused_counting(c_losses, c_dlogits, logits, targets, 1.0, Tensor::empty({3}, DType::f32)); },
      {"cross_entropy_fused_counting", "count_and_dloss"}));
}

TEST(CrossEntropy, EveryRowIgnoredCountsZero) {
  const Tensor logits = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor losses = Tensor::empty({2}, DType::f32), dlogits = Tensor::empty({2, 3}, DType::f32);
  EXPECT_EQ(ops::cross_entropy_fused(losses, dlogits, logits, Tensor::from_ints({2}, {kIgnoreIndex, kIgnoreIndex}), 1.0), 0);
  EXPECT_EQ(values(losses), (std::vector<double>{0, 0}));
  EXPECT_EQ(values(dlogits), std::vector<double>(6, 0.0));
}

// L = dloss * sum(losses): the fused op's dlogits is dL/dlogits.
TEST(CrossEntropy, FusedGradientMatchesFiniteDifferences) {
  const int64_t n = 6, v = 7;
  Rng rng(62);
  const Tensor logits = random_tensor({n, v}, DType::f64, rng, -3.0, 3.0);
  const Tensor targets = Tensor::from_ints({n}, {3, kIgnoreIndex, 0, 6, kIgnoreIndex, 3});
  const double dloss = 0.37;
  const Tensor losses = Tensor::empty({n}, DType::f64), dlogits = Tensor::empty({n, v}, DType::f64);
  auto loss = [&] {
    ops::cross_entropy_forward(losses, logits, targets);
    double s = 0;
    for (double l : values(losses)) s += l;
    return dloss * s;
  };
  auto backward = [&] { ops::cross_entropy_fused(losses, dlogits, logits, targets, dloss); };
  test::check_gradients({{"logits", logits, dlogits, false}}, loss, backward);
}

TEST(CrossEntropy, TargetsOutOfRangeAreErrorsNamingTargetAndRow) {
  using test::throws_error_naming;
  const Tensor logits = Tensor::zeros({3, 5}, DType::f32), losses = Tensor::zeros({3}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_ints({3}, {0, 4, 5})); },
                                  {"cross_entropy_forward", "target 5", "row 2", "[0, 5)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_fused(losses, logits, logits, Tensor::from_ints({3}, {-1, 0, 0}), 1.0); },
                                  {"cross_entropy_fused", "target -1", "row 0", "-100"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_forward(losses, logits, Tensor::zeros({3}, DType::i64)); },
                                  {"cross_entropy_forward", "targets", "i64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_forward(losses, logits, Tensor::from_ints({2}, {0, 1})); },
                                  {"cross_entropy_forward", "targets", "(2)", "(3)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_forward(Tensor::zeros({5}, DType::f32), logits, Tensor::from_ints({3}, {0, 1, 2})); },
                                  {"cross_entropy_forward", "losses"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_fused(losses, Tensor::zeros({3, 4}, DType::f32), logits, Tensor::from_ints({3}, {0, 1, 2}), 1.0); },
                                  {"cross_entropy_fused", "dlogits"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::cross_entropy_fused(losses, logits.to(DType::f64), logits, Tensor::from_ints({3}, {0, 1, 2}), 1.0); },
                                  {"cross_entropy_fused", "dlogits", "f64"}));
}

}  // namespace
}  // namespace zt
