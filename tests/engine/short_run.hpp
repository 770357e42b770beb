// The short training run the engine's GPU tests compare: gpt2-tiny on the synthetic corpus, 30
// steps of 8 x 64 tokens.
#pragma once

#include <string>

#include "zt/engine/trainer.hpp"

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

}  // namespace zt::engine::test_runs
