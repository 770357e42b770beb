// offload_param {device: cpu} on one GPU (scripts/gpu-test): gpt2-tiny in bf16 at stage 3 with
// its parameter partition in pinned host memory trains like stage 3 without offload, within
// bf16 rounding (the step is the same arithmetic on the same bytes; the GPU's atomics make runs
// differ in the last bits); the device counters show the partition gone from the GPU, and the
// parameters held on the device are the gathered working set that the prefetch limits bound.
// Without a GPU these tests skip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "zt/core/device.hpp"
#include "zt/core/storage.hpp"
#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {
namespace {

constexpr int64_t kMaxLive = 24000;  // elements gathered at most (beyond the module in use)

Config tiny_config(bool offload_param, bool offload_optimizer) {
  Config c;
  c.train_micro_batch_size_per_gpu = 8;
  c.gradient_accumulation_steps = 1;
  c.train_batch_size = 8;
  c.optimizer = OptimizerConfig{"AdamW", {{"lr", 3e-3}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.0}}};
  c.bf16 = true;
  c.gradient_clipping = 1.0;
  c.zero.stage = 3;
  c.zero.overlap_comm = true;
  c.zero.stage3_param_persistence_threshold = 1000;  // biases and norms stay whole; matrices are fetched
  c.zero.stage3_prefetch_bucket_size = 12000;
  c.zero.stage3_max_live_parameters = kMaxLive;
  if (offload_param) {
    c.zero.offload_param.device = "cpu";
    c.zero.offload_param.pin_memory = true;
  }
  if (offload_optimizer) {
    c.zero.offload_optimizer.device = "cpu";
    c.zero.offload_optimizer.pin_memory = true;
  }
  return c;
}

struct GpuRun {
  std::vector<double> losses;
  size_t device_bytes_after_init = 0;  // what the engine holds on the GPU before the first step
  size_t device_peak = 0;              // during training, activations included
  zero::MemoryReport memory;
  std::string placement;
};

GpuRun train_tiny(bool offload_param, bool offload_optimizer, int steps) {
  GpuRun run;
  {
    auto model = models::build_causal_lm(models::builtin_config("gpt2-tiny"));
    model->init_weights(42);
    for (const auto& [name, p] : model->named_parameters()) p->data = p->data.to(Device::cuda(0));
    auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(/*in_place_grad=*/true),
                             tiny_config(offload_param, offload_optimizer)).engine;
    run.device_bytes_after_init = device_bytes_allocated();
    data::MarkovCorpus corpus({128, 4, 1.0, 3, 7});
    reset_device_bytes_peak();
    for (int s = 0; s < steps; ++s) run.losses.push_back(engine->train_batch(corpus, 64));
    run.device_peak = device_bytes_peak();
    run.memory = engine->memory_report();
    run.placement = engine->placement();
  }
  return run;
}

class ParamOffloadCuda : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TEST_P(ParamOffloadCuda, Bf16TrainsLikeStageThreeWithThePartitionOffTheGpu) {
  const bool offload_optimizer = GetParam();
  const size_t before = device_bytes_allocated();
  const GpuRun plain = train_tiny(false, offload_optimizer, 20);
  const GpuRun offloaded = train_tiny(true, offload_optimizer, 20);
  EXPECT_EQ(device_bytes_allocated(), before) << "the engines left device memory behind";

  ASSERT_EQ(plain.losses.size(), offloaded.losses.size());
  double worst = 0;
  for (size_t i = 0; i < plain.losses.size(); ++i) {
    const double diff = std::fabs(offloaded.losses[i] - plain.losses[i]);
    worst = std::max(worst, diff / plain.losses[i]);
    EXPECT_LT(diff, 1e-2 * plain.losses[i]) << "step " << i + 1 << ": stage 3 " << plain.losses[i]
                                            << ", with offload_param " << offloaded.losses[i];
  }
  EXPECT_LT(offloaded.losses.back(), 0.9 * offloaded.losses.front()) << "offload_param on cuda did not train";

  // The partition is host memory now: the device holds that many bytes less after initialize.
  const size_t partition = plain.memory.parameters;
  EXPECT_EQ(offloaded.memory.parameters, partition);
  EXPECT_EQ(offloaded.memory.parameters_place, zero::ParamPlace::host);
  EXPECT_EQ(offloaded.memory.parameter_buffers, 0u);  // one rank: pieces are copied straight into place
  const double freed = double(plain.device_bytes_after_init) - double(offloaded.device_bytes_after_init);
  EXPECT_NEAR(freed, double(partition), 4096.0) << "device bytes after initialize: stage 3 "
                                                << plain.device_bytes_after_init << ", with offload_param "
                                                << offloaded.device_bytes_after_init;
  // On the device, parameters are only what is gathered: the module in use plus prefetches within
  // stage3_max_live_parameters, and the small persistent ones; well under the partition.
  const size_t largest = 16384 * 2;  // gpt2-tiny's largest matrix (64 x 256), bf16
  EXPECT_LE(offloaded.memory.gathered_peak, size_t(kMaxLive) * 2 + largest);
  EXPECT_LT(offloaded.memory.gathered_peak + offloaded.memory.persistent_gathered, partition / 2);
  const std::string states = offload_optimizer ? "host (pinned)" : "cuda:0";
  EXPECT_EQ(offloaded.placement,
            "parameters: host (pinned), fetched per module, gradients: cuda:0, master weights and optimizer states: " +
                states);
  std::printf("offload_param%s on cuda, bf16: worst relative loss difference %.3g over %zu steps (loss %.4f -> %.4f); "
              "device bytes after init %zu -> %zu (partition %zu); gathered peak %zu, persistent %zu; device peak "
              "%.1f -> %.1f MiB\n",
              offload_optimizer ? " + offload_optimizer" : "", worst, plain.losses.size(), offloaded.losses.front(),
              offloaded.losses.back(), plain.device_bytes_after_init, offloaded.device_bytes_after_init, partition,
              offloaded.memory.gathered_peak, offloaded.memory.persistent_gathered,
              double(plain.device_peak) / (1 << 20), double(offloaded.device_peak) / (1 << 20));
}

INSTANTIATE_TEST_SUITE_P(OptimizerOffload, ParamOffloadCuda, ::testing::Bool(), [](const auto& info) {
  return std::string(info.param ? "with_offload_optimizer" : "optimizer_on_gpu");
});

}  // namespace
}  // namespace zt::engine
