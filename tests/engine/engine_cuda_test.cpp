// The engine on one GPU (scripts/gpu-test): `zt train`'s loop with every parameter, gradient,
// master weight and optimizer state on CUDA, the local process group at world size 1, under
// ZeRO stages 0 and 3. In f32 the loss curve must follow the CPU's step for step; in bf16 (the
// GPU default: bf16 storage and compute, f32 master weights and AdamW) it must train. Without a
// GPU these tests skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "zt/core/device.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {
namespace {

TrainOptions short_run(const std::string& device, const std::string& precision, int stage) {
  TrainOptions o;  // gpt2-tiny on the synthetic corpus
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

class EngineCuda : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TEST_P(EngineCuda, F32LossCurveFollowsTheCpu) {
  const int stage = GetParam();
  const TrainResult cpu = train(short_run("cpu", "fp32", stage), [](const std::string&) {});
  const TrainResult gpu = train(short_run("cuda", "fp32", stage), [](const std::string&) {});
  ASSERT_EQ(gpu.device, "cuda:0");
  ASSERT_EQ(cpu.steps.size(), gpu.steps.size());
  double worst = 0;
  for (size_t i = 0; i < cpu.steps.size(); ++i) {
    const double diff = std::fabs(cpu.steps[i].loss - gpu.steps[i].loss);
    worst = std::max(worst, diff);
    EXPECT_LT(diff, 1e-4) << "step " << i + 1 << ": cpu " << cpu.steps[i].loss << ", cuda " << gpu.steps[i].loss;
  }
  EXPECT_GT(gpu.device_peak_bytes, 0u);
  std::printf("stage %d f32 on cuda: worst loss difference from the cpu %.3g over %zu steps (first %.5f, last %.5f)\n",
              stage, worst, cpu.steps.size(), gpu.steps.front().loss, gpu.steps.back().loss);
}

TEST_P(EngineCuda, Bf16Trains) {
  const int stage = GetParam();
  TrainOptions o = short_run("cuda", "bf16", stage);
  o.steps = 60;
  const TrainResult gpu = train(o, [](const std::string&) {});
  ASSERT_EQ(gpu.precision, "bf16");
  const double first = gpu.steps.front().loss, last = gpu.final_loss;
  for (const auto& s : gpu.steps) ASSERT_TRUE(std::isfinite(s.loss)) << "step " << s.step;
  EXPECT_LT(last, 0.8 * first) << "bf16 on cuda did not train: first loss " << first << ", last " << last;
  // bf16 master weights stay f32 on the device: the model states are bf16 params and grads
  // (stage 0) plus f32 master, exp_avg and exp_avg_sq.
  EXPECT_GT(gpu.memory.master_weights, 0u);
  std::printf("stage %d bf16 on cuda: loss %.4f -> %.4f (floor %.4f), gpu peak %.1f MiB\n", stage, first, last,
              gpu.entropy_floor, double(gpu.device_peak_bytes) / (1 << 20));
}

INSTANTIATE_TEST_SUITE_P(Stages, EngineCuda, ::testing::Values(0, 3));

}  // namespace
}  // namespace zt::engine
