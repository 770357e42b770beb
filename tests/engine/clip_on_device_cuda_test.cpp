// The clip factor computed on the GPU (bf16 with AdamW on one GPU): the run follows the host's
// round trip (ZT_GRAD_NORM_ON_HOST=1) step for step, with clipping engaged; a gradient norm that
// is not finite leaves the parameters as they were and is reported when the norm is read, where
// the host path reports it in step(). Without a GPU these tests skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "short_run.hpp"
#include "zt/core/device.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {
namespace {

class ClipOnDeviceCuda : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
  void TearDown() override { unsetenv("ZT_GRAD_NORM_ON_HOST"); }
};

TrainResult run(int stage, bool norm_on_host) {
  if (norm_on_host) setenv("ZT_GRAD_NORM_ON_HOST", "1", 1);
  else unsetenv("ZT_GRAD_NORM_ON_HOST");
  TrainOptions o = test_runs::short_run("cuda", "bf16", stage);
  o.grad_clip = 0.5;
  return train(o, [](const std::string&) {});
}

TEST_P(ClipOnDeviceCuda, FollowsTheHostPathStepForStep) {
  const int stage = GetParam();
  const TrainResult host = run(stage, true), device = run(stage, false);
  ASSERT_EQ(device.steps.size(), host.steps.size());
  int clipped = 0;
  for (size_t i = 0; i < host.steps.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "step " << i + 1);
    // bf16 runs differ in the last bits from run to run (the embedding's backward adds with atomics).
    EXPECT_NEAR(device.steps[i].loss, host.steps[i].loss, 1e-2 * std::fabs(host.steps[i].loss));
    EXPECT_NEAR(device.steps[i].grad_norm, host.steps[i].grad_norm, 2e-2 * host.steps[i].grad_norm);
    clipped += host.steps[i].grad_norm > 0.5;
  }
  EXPECT_GT(clipped, 3) << "clipping hardly engaged: the comparison says little about the factor";
  EXPECT_LT(device.final_loss, 0.9 * device.steps.front().loss) << "the run did not train";
}

INSTANTIATE_TEST_SUITE_P(Stages, ClipOnDeviceCuda, ::testing::Values(0, 1, 3),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

std::shared_ptr<Engine> tiny_engine(std::shared_ptr<nn::Module>& model) {
  model = test_runs::tiny_gpt2_on_cuda(5);
  Config c = test_runs::bf16_adamw_config(4);
  c.gradient_clipping = 1.0;
  return initialize(model, std::make_shared<nn::CrossEntropyLoss>(true), c).engine;
}

std::vector<std::vector<char>> parameter_bytes(nn::Module& model) {
  std::vector<std::vector<char>> bytes;
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor host = p->data.to(Device::cpu());
    const char* raw = static_cast<const char*>(host.raw());
    bytes.emplace_back(raw, raw + host.nbytes());
  }
  return bytes;
}

TEST(ClipOnDeviceCudaErrors, NonFiniteNormLeavesTheParametersAndSaysSo) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  for (const bool norm_on_host : {false, true}) {
    SCOPED_TRACE(norm_on_host ? "norm on the host" : "norm on the device");
    if (norm_on_host) setenv("ZT_GRAD_NORM_ON_HOST", "1", 1);
    else unsetenv("ZT_GRAD_NORM_ON_HOST");
    std::shared_ptr<nn::Module> model;
    const auto engine = tiny_engine(model);
    data::MarkovCorpus corpus({128, 4, 1.0, 3, 7});
    data::Batch b = corpus.next_batch(4, 32);
    engine->forward(b.inputs, b.targets);
    engine->backward();
    ASSERT_TRUE(engine->step());
    ASSERT_TRUE(std::isfinite(engine->last_grad_norm()));
    // The first element of every parameter NaN (in the bf16 parameters, not the master weights, so
    // that an update applied would overwrite them): the loss and the gradients follow.
    for (const auto& [name, p] : model->named_parameters())
      p->data.view(0, {1}).copy_from(Tensor::from_floats({1}, {std::numeric_limits<float>::quiet_NaN()}, p->data.dtype()));
    const auto before = parameter_bytes(*model);
    b = corpus.next_batch(4, 32);
    engine->forward(b.inputs, b.targets);
    engine->backward();
    std::string message;
    try {
      engine->step();
      engine->last_grad_norm();
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_NE(message.find("norm is not finite"), std::string::npos) << message;
    EXPECT_NE(message.find("step 2"), std::string::npos) << message;
    EXPECT_TRUE(parameter_bytes(*model) == before) << "a step with a non-finite norm changed the parameters";
  }
  unsetenv("ZT_GRAD_NORM_ON_HOST");
}

}  // namespace
}  // namespace zt::engine
