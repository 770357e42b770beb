// Every ZeRO stage against stage 0 on the same ranks and data: losses, gradient norms and the
// final parameters agree (f32 to 1e-5, bf16 within its rounding); accumulation of micro-batches
// equals one large batch; a user-defined model trains under stage 3; each rank holds what the
// ZeRO paper's formulas say.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "../../examples/mlp_regressor.hpp"
#include "../comm/mpi_test_main.hpp"
#include "odd_gpt.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/engine/trainer.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {
namespace {

using test::odd_gpt;

Config make_config(int stage, bool bf16, int64_t micro, int64_t gas, int world) {
  Config c;
  c.train_micro_batch_size_per_gpu = micro;
  c.gradient_accumulation_steps = gas;
  c.train_batch_size = micro * gas * world;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
  c.bf16 = bf16;
  c.gradient_clipping = 0.5;
  c.zero.stage = stage;
  c.zero.reduce_bucket_size = 700;            // several buckets, parameters of every size
  c.zero.overlap_comm = stage >= 2;
  c.zero.stage3_param_persistence_threshold = 40;  // biases stay whole, weights are gathered
  c.zero.stage3_prefetch_bucket_size = 300;
  return c;
}

struct TrainingRun {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, Tensor>> params;
  zero::MemoryReport memory;
  int64_t parameter_count = 0;
  int64_t padded_count = 0;  // the flat buffers' length, padding included
};

// Trains the odd GPT for `steps` steps; each rank draws its own data. micro * gas rows per step.
TrainingRun train_gpt(int stage, bool bf16, int steps, int64_t micro = 4, int64_t gas = 1,
                      const std::optional<OptimizerConfig>& optimizer = std::nullopt) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(5);
  Config config = make_config(stage, bf16, micro, gas, world->size());
  if (optimizer) config.optimizer = optimizer;
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), config).engine;
  data::MarkovCorpus corpus({37, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  TrainingRun run;
  for (int s = 0; s < steps; ++s) {
    // One batch of micro * gas rows per rank, cut into micro-batches, so that any split of the
    // same rows is comparable.
    const data::Batch batch = corpus.next_batch(micro * gas, 16);
    double loss = 0;
    for (int64_t i = 0; i < gas; ++i) {
      loss += engine->forward(batch.inputs.slice(i * micro, (i + 1) * micro), batch.targets.slice(i * micro, (i + 1) * micro));
      engine->backward();
    }
    EXPECT_TRUE(engine->step());
    Tensor mean = Tensor::zeros({1}, DType::f64);
    mean.data<double>()[0] = loss / double(gas);
    world->all_reduce(mean, comm::ReduceOp::avg).wait();
    run.losses.push_back(mean.data<double>()[0]);
    run.norms.push_back(engine->last_grad_norm());
  }
  run.params = engine->full_parameters();
  run.memory = engine->memory_report();
  run.parameter_count = engine->layout().parameter_count();
  run.padded_count = engine->layout().total();
  return run;
}

double relative_difference(const Tensor& a, const Tensor& b) {
  const auto x = a.to_floats(), y = b.to_floats();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    norm += double(y[i]) * y[i];
  }
  return std::sqrt(diff / (norm + 1e-30));
}

// Losses and norms within tolerance; parameters within param_tolerance (by norm): Adam divides
// each gradient by its own size, so elements whose gradient is near zero carry summation-order
// noise into the parameters at full step size.
void expect_same_run(const TrainingRun& got, const TrainingRun& want, double tolerance, const std::string& what,
                     double param_tolerance = 0) {
  if (param_tolerance == 0) param_tolerance = tolerance;
  ASSERT_EQ(got.losses.size(), want.losses.size());
  for (size_t i = 0; i < got.losses.size(); ++i) {
    EXPECT_NEAR(got.losses[i], want.losses[i], tolerance * std::fabs(want.losses[i])) << what << " loss, step " << i + 1;
    EXPECT_NEAR(got.norms[i], want.norms[i], tolerance * std::fabs(want.norms[i]) + 1e-12) << what << " norm, step " << i + 1;
  }
  ASSERT_EQ(got.params.size(), want.params.size());
  for (size_t i = 0; i < got.params.size(); ++i)
    EXPECT_LT(relative_difference(got.params[i].second, want.params[i].second), param_tolerance) << what << " " << got.params[i].first;
}

class StageParity : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(StageParity, TwentyStepsMatchStageZero) {
  const auto [stage, bf16] = GetParam();
  const TrainingRun reference = train_gpt(0, bf16, 20);
  const TrainingRun run = train_gpt(stage, bf16, 20);
  // f32: the same arithmetic in another order. bf16: gradients and parameters round to 8 bits
  // of mantissa, and a reduction in another order may round the other way.
  expect_same_run(run, reference, bf16 ? 2e-2 : 1e-5, "stage " + std::to_string(stage) + (bf16 ? " bf16" : " f32"));
  EXPECT_LT(run.losses.back(), run.losses.front()) << "it trains";
}

INSTANTIATE_TEST_SUITE_P(Stages, StageParity,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(false, true)),
                         [](const auto& info) {
                           return "stage" + std::to_string(std::get<0>(info.param)) + (std::get<1>(info.param) ? "_bf16" : "_f32");
                         });

// Optimizers with per-tensor state (LAMB's trust ratio) see whole tensors under every stage:
// a parameter split between ranks has its norms summed over the pieces.
TEST(Optimizers, EveryOptimizerMatchesStageZeroUnderStageThree) {
  const std::vector<OptimizerConfig> optimizers = {
      {"LAMB", {{"lr", 5e-2}, {"weight_decay", 0.01}}},
      {"Lion", {{"lr", 2e-3}, {"weight_decay", 0.1}}},
      {"SGD", {{"lr", 0.5}, {"momentum", 0.9}, {"weight_decay", 1e-4}}},
      {"Adam", {{"lr", 1e-2}, {"adam_w_mode", false}, {"weight_decay", 0.01}}},
  };
  for (const auto& optimizer : optimizers) {
    const TrainingRun reference = train_gpt(0, false, 12, 4, 1, optimizer);
    for (int stage : {1, 3}) {
      const TrainingRun run = train_gpt(stage, false, 12, 4, 1, optimizer);
      expect_same_run(run, reference, 1e-5, optimizer.type + " at stage " + std::to_string(stage), 1e-4);
    }
    const auto& l = reference.losses;
    EXPECT_LT(l[9] + l[10] + l[11], l[0] + l[1] + l[2]) << optimizer.type << " trains";
  }
}

TEST(Accumulation, FourMicroBatchesOfTwoEqualOneBatchOfEight) {
  for (int stage : {0, 2, 3}) {
    const TrainingRun whole = train_gpt(stage, false, 5, 8, 1);
    const TrainingRun accumulated = train_gpt(stage, false, 5, 2, 4);
    expect_same_run(accumulated, whole, 1e-5, "accumulation at stage " + std::to_string(stage), 1e-4);
  }
}

// The ZeRO paper's per-rank model states for N ranks: f32 16, 8+8/N, 4+12/N, 16/N bytes per
// parameter; bf16 16, 4+12/N, 2+14/N, 16/N.
TEST(Memory, ModelStatesFollowTheFormulas) {
  const int n = comm::world()->size();
  for (bool bf16 : {false, true}) {
    for (int stage = 0; stage <= 3; ++stage) {
      const TrainingRun run = train_gpt(stage, bf16, 1);
      const double psi = double(run.parameter_count);
      const double per_param[2][4] = {{16, 8 + 8.0 / n, 4 + 12.0 / n, 16.0 / n}, {16, 4 + 12.0 / n, 2 + 14.0 / n, 16.0 / n}};
      const double expected = per_param[bf16][stage] * psi;
      // 5%, plus the flat buffers' padding (16 bytes per padded element at most) and the small
      // parameters stage 3 keeps whole.
      const double padding = double(run.padded_count - run.parameter_count);
      const double slack = 0.05 * expected + 16.0 * padding + double(run.memory.persistent_gathered);
      EXPECT_NEAR(double(run.memory.model_states()), expected, slack)
          << "stage " << stage << (bf16 ? " bf16" : " f32") << ": params " << run.memory.parameters << " grads "
          << run.memory.gradients << " master " << run.memory.master_weights << " optimizer " << run.memory.optimizer_states;
    }
  }
}

// `zt train --device cuda` on every rank of a launch: each rank takes its own GPU, named by the
// local rank that mpirun (or zt launch's wrapper) gives it; on one host that is the world rank.
TEST(Launch, CudaMeansEachRanksOwnGpu) {
  TrainOptions o;
  o.device = "cuda";
  EXPECT_EQ(comm::launched_local_rank(), comm::world()->rank());
  EXPECT_EQ(rank_device(o), Device::cuda(comm::world()->rank()));
  o.device = "cuda:0";
  EXPECT_EQ(rank_device(o), Device::cuda(0));
  o.device = "cpu";
  EXPECT_EQ(rank_device(o), Device::cpu());
}

TEST(UserModel, MlpRegressorUnderStageThreeMatchesStageZero) {
  auto world = comm::world();
  std::vector<std::vector<double>> losses;
  for (int stage : {0, 3}) {
    auto model = examples::make_mlp_regressor(4, 24, 7);
    Config c = make_config(stage, false, 16, 1, world->size());
    c.gradient_clipping = 0;
    auto engine = initialize(model, std::make_shared<nn::MSELoss>(), c).engine;
    Rng rng(11 + uint64_t(world->rank()));
    losses.emplace_back();
    for (int step = 0; step < 30; ++step) {
      Tensor x, y;
      examples::make_regression_batch(x, y, 16, 4, rng);
      losses.back().push_back(engine->forward(x, y));
      engine->backward();
      engine->step();
    }
  }
  for (size_t i = 0; i < losses[0].size(); ++i) EXPECT_NEAR(losses[1][i], losses[0][i], 1e-5 * losses[0][i]);
  EXPECT_LT(losses[1].back(), 0.5 * losses[1].front());
}

// fp16 with dynamic loss scaling: a scale so large that the gradients overflow f16 makes every
// step skip; the scale holds for the first overflow (hysteresis 2), then halves per overflow;
// the parameters do not move; and a scale that would drop below the minimum is an error.
TEST(Fp16, OverflowSkipsTheStepAndLowersTheScale) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(5);
  Config c = make_config(2, false, 4, 1, world->size());
  c.fp16.enabled = true;
  c.fp16.initial_scale_power = 32;
  c.fp16.hysteresis = 2;
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c).engine;
  const auto before = engine->full_parameters();
  data::MarkovCorpus corpus({37, 4, 1.0, 3, uint64_t(world->rank())});
  std::vector<double> scales;
  for (int s = 0; s < 5; ++s) {
    const data::Batch b = corpus.next_batch(4, 16);
    engine->forward(b.inputs, b.targets);
    engine->backward();
    EXPECT_FALSE(engine->step()) << "step " << s + 1 << " should overflow and be skipped";
    scales.push_back(engine->loss_scale());
  }
  EXPECT_EQ(engine->skipped_steps(), 5);
  EXPECT_EQ(scales, (std::vector<double>{std::ldexp(1.0, 32), std::ldexp(1.0, 31), std::ldexp(1.0, 30),
                                         std::ldexp(1.0, 29), std::ldexp(1.0, 28)}));
  const auto after = engine->full_parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i].second.to_floats(), after[i].second.to_floats());
  // With the scale back in range, steps apply and the model trains.
  int applied = 0;
  for (int s = 0; s < 30; ++s) {
    const data::Batch b = corpus.next_batch(4, 16);
    engine->forward(b.inputs, b.targets);
    engine->backward();
    applied += engine->step();
  }
  EXPECT_GT(applied, 5);
  EXPECT_LT(engine->loss_scale(), std::ldexp(1.0, 28)) << "the scale kept falling until the gradients fit";
}

TEST(Fp16, ScaleBelowTheMinimumIsAnError) {
  auto world = comm::world();
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(5);
  Config c = make_config(1, false, 4, 1, world->size());
  c.fp16.enabled = true;
  c.fp16.initial_scale_power = 40;
  c.fp16.hysteresis = 1;
  c.fp16.min_loss_scale = std::ldexp(1.0, 38);
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c).engine;
  data::MarkovCorpus corpus({37, 4, 1.0, 3, uint64_t(world->rank())});
  try {
    for (int s = 0; s < 5; ++s) {
      const data::Batch b = corpus.next_batch(4, 16);
      engine->forward(b.inputs, b.targets);
      engine->backward();
      engine->step();
    }
    FAIL() << "expected an error at the minimum loss scale";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("min_loss_scale"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
