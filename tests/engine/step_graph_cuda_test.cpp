// train_batch's forwards and backwards replayed as one CUDA graph (src/engine/step_graph.hpp)
// against the same steps run eagerly (ZT_CUDA_GRAPHS=0): the same losses, gradient norms and
// parameters step for step, with batches whose count of ignored targets changes every step (the
// cross-entropy's count and the gradient's factor must come from the batch, not the capture), a
// learning rate that changes every step, two micro-batches a step, and clipping engaged. In f32
// the two runs differ only by the embedding backward's atomics; in bf16 within bf16 rounding.
// Without a GPU these tests skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "short_run.hpp"
#include "zt/core/device.hpp"
#include "zt/engine/engine.hpp"
#include "zt/engine/trainer.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::engine {
namespace {

// Rows of a fixed bigram rule (next = 7 * token + 3 mod V) from random starts, which the model
// learns within a few steps (the loss falls by percents a step, so a loss read a step late
// shows); in batch k, targets at positions where (t + k) % 5 < k % 4 are ignored.
class MaskedBigrams : public data::Dataset {
 public:
  explicit MaskedBigrams(int64_t vocab) : vocab_(vocab) {}
  data::Batch next_batch(int64_t batch_size, int64_t seq_len) override {
    std::mt19937 rng(uint32_t(1000 + drawn_));
    std::uniform_int_distribution<int32_t> token(0, int32_t(vocab_ - 1));
    std::vector<int32_t> tokens(size_t(batch_size * (seq_len + 1)));
    for (int64_t r = 0; r < batch_size; ++r) {
      int32_t t = token(rng);
      for (int64_t i = 0; i <= seq_len; ++i, t = int32_t((7 * int64_t(t) + 3) % vocab_)) tokens[size_t(r * (seq_len + 1) + i)] = t;
    }
    data::Batch b{Tensor::empty({batch_size, seq_len}, DType::i32), Tensor::empty({batch_size, seq_len}, DType::i32)};
    for (int64_t r = 0; r < batch_size; ++r)
      for (int64_t t = 0; t < seq_len; ++t) {
        b.inputs.data<int32_t>()[r * seq_len + t] = tokens[size_t(r * (seq_len + 1) + t)];
        const bool ignored = (t + int64_t(drawn_)) % 5 < int64_t(drawn_ % 4);
        b.targets.data<int32_t>()[r * seq_len + t] = ignored ? ops::kIgnoreIndex : tokens[size_t(r * (seq_len + 1) + t + 1)];
      }
    ++drawn_;
    return b;
  }
  int64_t vocab_size() const override { return vocab_; }
  std::string describe() const override { return "bigrams, some targets ignored"; }
  uint64_t position() const override { return drawn_; }
  void seek(uint64_t position) override { drawn_ = position; }

 private:
  int64_t vocab_;
  uint64_t drawn_ = 0;
};

struct RunRecord {
  std::vector<double> losses, norms;
  std::vector<std::vector<float>> parameters;
  int64_t replays = 0;
  std::string placement;
};

// manual_at: before that step, two micro-batches of another shape go through forward, backward and
// step, as a loop of the user's own would run them (-1: none).
RunRecord run(bool graphs, bool bf16, int stage, int steps, int manual_at = -1) {
  if (graphs) unsetenv("ZT_CUDA_GRAPHS");
  else setenv("ZT_CUDA_GRAPHS", "0", 1);
  auto model = test_runs::tiny_gpt2_on_cuda(11);
  Config c = test_runs::bf16_adamw_config(4);
  c.bf16 = bf16;
  c.gradient_accumulation_steps = 2;
  c.train_batch_size = 8;
  c.gradient_clipping = 0.5;
  c.zero.stage = stage;
  c.scheduler.type = "WarmupLR";
  c.scheduler.params = {
      {"warmup_min_lr", 5e-3}, {"warmup_max_lr", 1e-2}, {"warmup_num_steps", steps}, {"warmup_type", "linear"}};
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(true), c).engine;
  MaskedBigrams data(model->config().vocab_size);
  RunRecord r;
  for (int i = 0; i < steps; ++i) {
    if (i == manual_at) {
      for (int m = 0; m < 2; ++m) {
        const data::Batch b = data.next_batch(2, 16);
        r.losses.push_back(engine->forward(b.inputs, b.targets));
        engine->backward();
      }
      EXPECT_TRUE(engine->step());
      r.norms.push_back(engine->last_grad_norm());
      r.norms.push_back(r.norms.back());
    }
    r.losses.push_back(engine->train_batch(data, 32));
    r.norms.push_back(engine->last_grad_norm());
  }
  for (const auto& [name, p] : engine->full_parameters()) r.parameters.push_back(p.to_floats());
  r.replays = engine->step_graph_replays();
  r.placement = engine->placement();
  unsetenv("ZT_CUDA_GRAPHS");
  return r;
}

class StepGraphCuda : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
  void TearDown() override { unsetenv("ZT_CUDA_GRAPHS"); }
};

void expect_same_runs(const RunRecord& eager, const RunRecord& graphed, double loss_tol, double norm_tol, double param_tol) {
  ASSERT_EQ(graphed.losses.size(), eager.losses.size());
  for (size_t i = 0; i < eager.losses.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "step " << i + 1);
    EXPECT_NEAR(graphed.losses[i], eager.losses[i], loss_tol * std::fabs(eager.losses[i]));
    EXPECT_NEAR(graphed.norms[i], eager.norms[i], norm_tol * eager.norms[i]);
  }
  // By norm: Adam moves a coordinate whose gradient is near zero by up to lr whatever its sign,
  // so single coordinates differ by the atomics' last bits times lr / eps.
  ASSERT_EQ(graphed.parameters.size(), eager.parameters.size());
  double diff = 0, norm = 0;
  for (size_t p = 0; p < eager.parameters.size(); ++p)
    for (size_t i = 0; i < eager.parameters[p].size(); ++i) {
      const double e = eager.parameters[p][i], d = graphed.parameters[p][i] - e;
      diff += d * d, norm += e * e;
    }
  const double relative = std::sqrt(diff / norm);
  EXPECT_LT(relative, param_tol) << "the parameters after the runs differ by " << relative << " (by norm)";
  std::printf("graphed against eager: parameters differ by %.3g (relative, by norm)\n", relative);
}

TEST_P(StepGraphCuda, F32ReplaysFollowTheEagerSteps) {
  const int stage = GetParam(), steps = 10;
  const RunRecord eager = run(false, false, stage, steps), graphed = run(true, false, stage, steps);
  EXPECT_EQ(eager.replays, 0);
  EXPECT_EQ(graphed.replays, steps - 3) << "2 eager steps, the capture, then replays";
  EXPECT_NE(graphed.placement.find("one CUDA graph"), std::string::npos) << graphed.placement;
  // Different batches give losses and norms that differ by percents: these bounds tell them apart.
  expect_same_runs(eager, graphed, 1e-5, 1e-4, 1e-4);
  EXPECT_LT(eager.losses.back(), 0.8 * eager.losses.front()) << "the run did not learn: the losses say little";
  int clipped = 0;
  for (double n : eager.norms) clipped += n > 0.5;
  EXPECT_GT(clipped, 2) << "clipping hardly engaged";
}

TEST_P(StepGraphCuda, Bf16ReplaysFollowTheEagerSteps) {
  const int stage = GetParam(), steps = 10;
  const RunRecord eager = run(false, true, stage, steps), graphed = run(true, true, stage, steps);
  EXPECT_EQ(graphed.replays, steps - 3);
  // bf16 with the clip factor on the GPU: the losses are read right after the graph's launch.
  expect_same_runs(eager, graphed, 1e-2, 3e-2, 3e-2);
  // The loss falls by about a percent or more a step: a replay's loss read a step late would be
  // nearer the eager run's loss of the step before than of its own.
  for (size_t i = 1; i < eager.losses.size(); ++i)
    EXPECT_LT(std::fabs(graphed.losses[i] - eager.losses[i]), std::fabs(graphed.losses[i] - eager.losses[i - 1]))
        << "step " << i + 1 << ": eager " << eager.losses[i - 1] << " then " << eager.losses[i] << ", graphed "
        << graphed.losses[i];
}

// A step of the caller's own between train_batch's (other shapes through the loss and the
// modules) drops the graph, which is captured again after as many warm-up steps.
TEST_P(StepGraphCuda, AManualStepInBetweenIsFollowedByANewCapture) {
  const int stage = GetParam(), steps = 12;
  const RunRecord eager = run(false, false, stage, steps, 6), graphed = run(true, false, stage, steps, 6);
  EXPECT_EQ(graphed.replays, steps - 6 - 3) << "captured again after the manual step's warm-up";
  expect_same_runs(eager, graphed, 1e-5, 1e-4, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Stages, StepGraphCuda, ::testing::Values(0, 1),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

TEST(StepGraphCudaRefusal, RunsWithoutAGraphWhereTheStepNeedsTheHost) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  auto model = test_runs::tiny_gpt2_on_cuda(11);
  Config c = test_runs::bf16_adamw_config(4);
  c.zero.stage = 3;
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(true), c).engine;
  MaskedBigrams data(model->config().vocab_size);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(std::isfinite(engine->train_batch(data, 32)));
  EXPECT_EQ(engine->step_graph_replays(), 0);
  EXPECT_EQ(engine->placement().find("CUDA graph"), std::string::npos) << engine->placement();
}

}  // namespace
}  // namespace zt::engine
