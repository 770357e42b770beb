// The short training run the engine's GPU tests compare: gpt2-tiny on the synthetic corpus, 30
// steps of 8 x 64 tokens; and the pieces of an engine that those tests build by hand.
#pragma once

#include <string>

#include "zt/core/device.hpp"
#include "zt/engine/config.hpp"
#include "zt/engine/trainer.hpp"
#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine::test_runs {

inline TrainOptions short_run(const std::string& device, const std::string& precision, int stage) {
  TrainOptions o;
  o.steps = 30;
  o.batch_size = 8;
  o.seq_len = 64;
  o.warmup_steps = 5;
  o.threads = 2;
  o.device = device;
  o.precision = precision;
  o.zero_stage = stage;
  return o;
}

// gpt2-tiny with the weights of seed, every parameter moved to the GPU.
inline std::shared_ptr<models::CausalLM> tiny_gpt2_on_cuda(uint64_t seed) {
  auto model = models::build_causal_lm(models::builtin_config("gpt2-tiny"));
  model->init_weights(seed);
  for (const auto& [name, p] : model->named_parameters()) p->data = p->data.to(Device::cuda());
  return model;
}

// One rank's bf16 config with AdamW (lr 1e-3), micro-batches of `batch`, no accumulation.
inline Config bf16_adamw_config(int64_t batch) {
  Config c;
  c.train_micro_batch_size_per_gpu = batch;
  c.gradient_accumulation_steps = 1;
  c.train_batch_size = batch;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 1e-3}}};
  c.bf16 = true;
  return c;
}

}  // namespace zt::engine::test_runs
