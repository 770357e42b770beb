// Shared pieces of the checkpoint tests: a small GPT whose sizes divide by no world size, an
// engine config with a schedule and clipping, and a training run that records its losses.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "odd_gpt.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine::testing {

using test::odd_gpt;

inline Config make_config(int stage, int world, bool bf16 = false) {
  Config c;
  c.train_micro_batch_size_per_gpu = 4;
  c.gradient_accumulation_steps = 1;
  c.train_batch_size = 4 * world;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}}};
  c.scheduler.type = "WarmupLR";
  c.scheduler.params = {{"warmup_min_lr", 0.0}, {"warmup_max_lr", 3e-3}, {"warmup_num_steps", 8}, {"warmup_type", "linear"}};
  c.bf16 = bf16;
  c.gradient_clipping = 0.5;
  c.zero.stage = stage;
  c.zero.reduce_bucket_size = 700;
  c.zero.overlap_comm = stage >= 2;
  c.zero.stage3_param_persistence_threshold = 40;
  c.zero.stage3_prefetch_bucket_size = 300;
  return c;
}

// per_rank_data: each rank draws its own stream; otherwise every rank draws the same batches,
// so that any world size trains the same model (up to rounding).
inline Initialized make_engine(int stage, std::shared_ptr<comm::ProcessGroup> group, bool per_rank_data,
                                           uint64_t init_seed = 5, const models::TransformerConfig& model_config = odd_gpt(),
                                           bool bf16 = false) {
  auto model = models::build_causal_lm(model_config);
  model->init_weights(init_seed);
  auto corpus = std::make_shared<data::MarkovCorpus>(
      data::MarkovCorpusOptions{model_config.vocab_size, 4, 1.0, 3, 100 + (per_rank_data ? uint64_t(group->rank()) : 0)});
  return initialize(model, std::make_shared<nn::CrossEntropyLoss>(), make_config(stage, group->size(), bf16), corpus, group);
}

inline std::vector<double> train_steps(Engine& engine, data::Dataset& data, int steps) {
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) losses.push_back(engine.train_batch(data, 16));
  return losses;
}

// The whole model's f32 parameters end to end (from the master weights), on every rank.
inline std::vector<float> flat_parameters(Engine& engine) {
  std::vector<float> all;
  for (const auto& [name, t] : engine.full_parameters()) {
    const auto v = t.to_floats();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

}  // namespace zt::engine::testing
