// Activation checkpointing on one GPU (scripts/gpu-test): the same code path on device tensors.
// `zt train --device cuda` with --activation-checkpointing or --cpu-checkpointing follows the run
// without it step for step (f32 to 1e-5, bf16 within bf16 rounding: embedding's backward adds
// with atomics, so runs differ in the last bits); the device bytes held between the forward and
// the backward drop with checkpointing, and drop again when the saved block inputs go to pinned
// host memory. Without a GPU these tests skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "short_run.hpp"
#include "zt/core/device.hpp"
#include "zt/core/storage.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/engine/trainer.hpp"
#include "zt/nn/checkpoint.hpp"

namespace zt::engine {
namespace {

class CheckpointingCuda : public ::testing::TestWithParam<std::tuple<std::string, int>> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TrainOptions short_run(const std::string& precision, int stage) { return test_runs::short_run("cuda", precision, stage); }

TEST_P(CheckpointingCuda, TrainingFollowsTheRunWithoutIt) {
  const auto [precision, stage] = GetParam();
  const double tolerance = precision == "bf16" ? 1e-2 : 1e-5;  // relative, per step
  const TrainResult plain = train(short_run(precision, stage), [](const std::string&) {});
  for (const bool cpu : {false, true}) {
    TrainOptions o = short_run(precision, stage);
    o.activation_checkpointing = true;
    o.cpu_checkpointing = cpu;
    std::string placement;
    const TrainResult checkpointed = train(o, [&](const std::string& line) {
      if (line.rfind("parameters:", 0) == 0) placement = line;
    });
    EXPECT_NE(placement.find(cpu ? "activations: checkpointed at 2 of 2 blocks, inputs in pinned host memory"
                                 : "activations: checkpointed at 2 of 2 blocks, inputs on cuda:0"),
              std::string::npos)
        << placement;
    ASSERT_EQ(checkpointed.steps.size(), plain.steps.size());
    double worst = 0;
    for (size_t i = 0; i < plain.steps.size(); ++i) {
      const double diff = std::fabs(checkpointed.steps[i].loss - plain.steps[i].loss) / std::fabs(plain.steps[i].loss);
      worst = std::max(worst, diff);
      EXPECT_LT(diff, tolerance) << "step " << i + 1 << ": without " << plain.steps[i].loss << ", checkpointed "
                                 << checkpointed.steps[i].loss;
    }
    EXPECT_LT(plain.final_loss, 0.9 * plain.steps.front().loss) << "the run did not train";
    std::printf("%s stage %d on cuda, %s: worst relative loss difference %.3g over %zu steps; gpu peak %.1f MiB "
                "(without checkpointing %.1f MiB)\n",
                precision.c_str(), stage, cpu ? "cpu_checkpointing" : "checkpointed", worst, plain.steps.size(),
                double(checkpointed.device_peak_bytes) / (1 << 20), double(plain.device_peak_bytes) / (1 << 20));
  }
}

INSTANTIATE_TEST_SUITE_P(PrecisionsAndStages, CheckpointingCuda,
                         ::testing::Combine(::testing::Values("fp32", "bf16"), ::testing::Values(0, 3)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_stage" + std::to_string(std::get<1>(info.param));
                         });

struct Held {
  size_t device = 0;           // bytes allocated by the forward and still held before the backward
  bool inputs_on_host = true;  // every Checkpoint's saved input is a host tensor
};

Held held_between_forward_and_backward(const ActivationCheckpointingConfig& ac) {
  auto model = test_runs::tiny_gpt2_on_cuda(3);
  Config c = test_runs::bf16_adamw_config(16);
  c.activation_checkpointing = ac;
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(true), c).engine;
  data::MarkovCorpus corpus({128, 4, 1.0, 3, 7});
  Held held;
  for (int step = 0; step < 2; ++step) {  // the second step measures: the pinned buffers exist by then
    const data::Batch b = corpus.next_batch(16, 128);
    const size_t before = device_bytes_allocated();
    engine->forward(b.inputs, b.targets);
    held.device = device_bytes_allocated() - before;
    held.inputs_on_host = true;
    model->visit([&](const std::string&, nn::Module& m) {
      if (auto* k = dynamic_cast<nn::Checkpoint*>(&m)) held.inputs_on_host &= k->saved_on_host();
    });
    engine->backward();
    engine->step();
  }
  return held;
}

TEST(CheckpointingCudaMemory, DeviceBytesHeldDrop) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  ActivationCheckpointingConfig on;
  on.enabled = true;
  ActivationCheckpointingConfig host = on;
  host.cpu_checkpointing = true;
  const Held plain = held_between_forward_and_backward({});
  const Held checkpointed = held_between_forward_and_backward(on);
  const Held offloaded = held_between_forward_and_backward(host);
  EXPECT_LT(checkpointed.device, plain.device);
  EXPECT_LT(offloaded.device, checkpointed.device);
  EXPECT_FALSE(checkpointed.inputs_on_host);
  EXPECT_TRUE(offloaded.inputs_on_host);
  std::printf("bf16 gpt2-tiny, 16 x 128 tokens: device bytes held between forward and backward %zu, checkpointed %zu, "
              "with inputs in host memory %zu\n",
              plain.device, checkpointed.device, offloaded.device);
}

}  // namespace
}  // namespace zt::engine
