// Training runs for the activation-checkpointing tests (one process and multi-rank): a built-in
// tiny model or a user-built stack, a few steps through the engine, and what must not change
// when checkpointing is turned on: losses, gradient norms, final parameters. Header-only.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bit_equal.hpp"
#include "../../examples/mlp_regressor.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"
#include "zt/nn/checkpoint.hpp"

namespace zt::engine::testing_runs {

using test::bit_equal;

struct TrainingRun {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, Tensor>> params;
  std::string placement;
  int64_t trace_breaks = 0;
};

inline Config base_config(int stage, bool bf16, int64_t gas, int world) {
  Config c;
  c.train_micro_batch_size_per_gpu = 2;
  c.gradient_accumulation_steps = gas;
  c.train_batch_size = 2 * gas * world;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
  c.bf16 = bf16;
  c.gradient_clipping = 0.5;
  c.zero.stage = stage;
  c.zero.reduce_bucket_size = 5000;
  c.zero.overlap_comm = stage >= 2;
  c.zero.stage3_param_persistence_threshold = 100;
  c.zero.stage3_prefetch_bucket_size = 20000;  // some prefetching of the next modules' parameters
  return c;
}

inline ActivationCheckpointingConfig checkpointing(bool cpu, std::optional<int64_t> number = std::nullopt) {
  ActivationCheckpointingConfig a;
  a.enabled = true;
  a.cpu_checkpointing = cpu;
  a.number_checkpoints = number;
  return a;
}

inline TrainingRun finish(Engine& engine, TrainingRun run) {
  run.params = engine.full_parameters();
  run.placement = engine.placement();
  run.trace_breaks = engine.coordinator().trace_breaks();
  return run;
}

// gpt2-tiny or llama-tiny on the synthetic corpus.
inline TrainingRun train_tiny(const std::string& name, int stage, bool bf16, const ActivationCheckpointingConfig& ac,
                      int64_t gas, int steps = 10) {
  auto world = comm::init_process_group();  // the world (started here in a one-process test)
  auto model = models::build_causal_lm(models::builtin_config(name));
  model->init_weights(5);
  Config c = base_config(stage, bf16, gas, world->size());
  c.activation_checkpointing = ac;
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c).engine;
  data::MarkovCorpus corpus({model->config().vocab_size, 4, 1.0, 3, 100 + uint64_t(world->rank())});
  TrainingRun run;
  for (int s = 0; s < steps; ++s) {
    double loss = 0;
    for (int64_t i = 0; i < gas; ++i) {
      const data::Batch b = corpus.next_batch(2, 32);
      loss += engine->forward(b.inputs, b.targets);
      engine->backward();
    }
    EXPECT_TRUE(engine->step());
    run.losses.push_back(loss);
    run.norms.push_back(engine->last_grad_norm());
  }
  return finish(*engine, std::move(run));
}

// A regressor built from containers, its hidden blocks optionally in Checkpoints (one nested).
inline std::shared_ptr<nn::Module> user_model(bool checkpointed) {
  auto wrap = [&](std::shared_ptr<nn::Module> m) -> std::shared_ptr<nn::Module> {
    return checkpointed ? std::make_shared<nn::Checkpoint>(std::move(m)) : m;
  };
  auto dense = [](int64_t in, int64_t out, ops::Activation act) {
    return std::make_shared<nn::Linear>(nn::LinearOptions{in, out, true, ops::WeightLayout::out_in, act, 0.3});
  };
  auto inner = std::make_shared<nn::Sequential>();
  inner->add(std::make_shared<nn::LayerNorm>(32)).add(dense(32, 32, ops::Activation::gelu_tanh));
  auto middle = std::make_shared<nn::Sequential>();
  middle->add(std::make_shared<nn::Residual>(wrap(inner))).add(dense(32, 32, ops::Activation::gelu_tanh));
  auto model = std::make_shared<nn::Sequential>();
  model->add(dense(4, 32, ops::Activation::gelu_tanh))
      .add(wrap(middle))
      .add(wrap(std::make_shared<nn::Residual>(dense(32, 32, ops::Activation::gelu_tanh))))
      .add(dense(32, 1, ops::Activation::none));
  Rng rng(8);
  model->init_parameters(rng);
  return model;
}

inline TrainingRun train_user_model(bool checkpointed, int stage, const ActivationCheckpointingConfig& ac, int64_t gas,
                            int steps = 10) {
  auto world = comm::init_process_group();  // the world (started here in a one-process test)
  Config c = base_config(stage, false, gas, world->size());
  c.zero.stage3_param_persistence_threshold = 10;
  c.zero.stage3_prefetch_bucket_size = 1500;
  c.activation_checkpointing = ac;
  auto engine = initialize(user_model(checkpointed), std::make_shared<nn::MSELoss>(), c).engine;
  Rng rng(30 + uint64_t(world->rank()));
  TrainingRun run;
  for (int s = 0; s < steps; ++s) {
    double loss = 0;
    for (int64_t i = 0; i < gas; ++i) {
      Tensor x, y;
      examples::make_regression_batch(x, y, 16, 4, rng);
      loss += engine->forward(x, y);
      engine->backward();
    }
    EXPECT_TRUE(engine->step());
    run.losses.push_back(loss);
    run.norms.push_back(engine->last_grad_norm());
  }
  return finish(*engine, std::move(run));
}


inline void expect_same_training(const TrainingRun& checkpointed, const TrainingRun& plain) {
  ASSERT_EQ(checkpointed.losses.size(), plain.losses.size());
  for (size_t i = 0; i < plain.losses.size(); ++i) {
    EXPECT_EQ(checkpointed.losses[i], plain.losses[i]) << "loss, step " << i + 1;
    EXPECT_EQ(checkpointed.norms[i], plain.norms[i]) << "grad norm, step " << i + 1;
  }
  ASSERT_EQ(checkpointed.params.size(), plain.params.size());
  for (size_t i = 0; i < plain.params.size(); ++i) {
    EXPECT_EQ(checkpointed.params[i].first, plain.params[i].first);
    EXPECT_TRUE(bit_equal(checkpointed.params[i].second, plain.params[i].second)) << plain.params[i].first;
  }
  // The loss moved: a run that trains nothing would match trivially.
  EXPECT_NE(plain.losses.front(), plain.losses.back());
}

}  // namespace zt::engine::testing_runs
