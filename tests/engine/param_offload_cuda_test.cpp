// offload_param on one GPU (scripts/gpu-test): gpt2-tiny in bf16 at stage 3 with its parameter
// partition in pinned host memory ({device: cpu}) or in a file ({device: nvme}, read through
// pinned buffers) trains like stage 3 without offload, within
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
constexpr int64_t kBufferCount = 2, kBufferElements = 16384;  // offload_param buffers

// offload_param's device: "none", "cpu" or "nvme" (files under the build folder).
Config tiny_config(const std::string& param_device, bool offload_optimizer) {
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
  if (param_device != "none") {
    c.zero.offload_param.device = param_device;
    c.zero.offload_param.pin_memory = true;
    c.zero.offload_param.nvme_path = std::string(ZT_BINARY_DIR) + "/param_offload_cuda_files";
    c.zero.offload_param.max_in_cpu = 0;
    // Buffers of the largest matrix (64 x 256), two of them: what the NVMe store holds is bounded by
    // these, not by the partition.
    c.zero.offload_param.buffer_count = kBufferCount;
    c.zero.offload_param.buffer_size = kBufferElements;
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

GpuRun train_tiny(const std::string& param_device, bool offload_optimizer, int steps) {
  GpuRun run;
  {
    auto model = models::build_causal_lm(models::builtin_config("gpt2-tiny"));
    model->init_weights(42);
    for (const auto& [name, p] : model->named_parameters()) p->data = p->data.to(Device::cuda(0));
    auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(/*in_place_grad=*/true),
                             tiny_config(param_device, offload_optimizer)).engine;
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

class ParamOffloadCuda : public ::testing::TestWithParam<std::tuple<std::string, bool>> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TEST_P(ParamOffloadCuda, Bf16TrainsLikeStageThreeWithThePartitionOffTheGpu) {
  const auto [param_device, offload_optimizer] = GetParam();
  const bool nvme = param_device == "nvme";
  const size_t before = device_bytes_allocated();
  const GpuRun plain = train_tiny("none", offload_optimizer, 20);
  const GpuRun offloaded = train_tiny(param_device, offload_optimizer, 20);
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

  // The partition is in host memory or the file now: the device holds that many bytes less
  // after initialize.
  const size_t partition = plain.memory.parameters;
  EXPECT_EQ(offloaded.memory.parameters, nvme ? 0u : partition);
  EXPECT_EQ(offloaded.memory.parameters_in_file, nvme ? partition : 0u);
  EXPECT_EQ(offloaded.memory.parameters_place, nvme ? zero::ParamPlace::nvme : zero::ParamPlace::host);
  // One rank from host memory: pieces are copied straight into place; from the file, through
  // buffer_count pinned read buffers (and two for writing).
  if (nvme) {
    // buffer_count read buffers and two write buffers, each of buffer_size bf16 elements at most.
    EXPECT_GT(offloaded.memory.parameter_buffers, 0u);
    EXPECT_LE(offloaded.memory.parameter_buffers, size_t(kBufferCount + 2) * kBufferElements * 2);
    EXPECT_LT(offloaded.memory.parameter_buffers, partition);
  } else {
    EXPECT_EQ(offloaded.memory.parameter_buffers, 0u);
  }
  const double freed = double(plain.device_bytes_after_init) - double(offloaded.device_bytes_after_init);
  EXPECT_NEAR(freed, double(partition), 4096.0) << "device bytes after initialize: stage 3 "
                                                << plain.device_bytes_after_init << ", with offload_param "
                                                << offloaded.device_bytes_after_init;
  // On the device, parameters are only what is gathered: the module in use plus prefetches within
  // stage3_max_live_parameters, and the small persistent ones; well under the partition.
  const size_t largest = 16384 * 2;  // gpt2-tiny's largest matrix (64 x 256), bf16
  EXPECT_LE(offloaded.memory.gathered_peak, size_t(kMaxLive) * 2 + largest);
  EXPECT_LT(offloaded.memory.gathered_peak + offloaded.memory.persistent_gathered, partition / 2);
  const std::string states = offload_optimizer ? "host (pinned transfers)" : "cuda:0";
  const std::string tail = ", fetched per module, gradients: cuda:0, master weights and optimizer states: " + states +
                           ", activations: kept for backward";
  if (nvme) {
    EXPECT_EQ(offloaded.placement.rfind("parameters: nvme (", 0), 0u) << offloaded.placement;
    EXPECT_NE(offloaded.placement.find(tail), std::string::npos) << offloaded.placement;
  } else {
    EXPECT_EQ(offloaded.placement, "parameters: host (pinned)" + tail);
  }
  std::printf("offload_param %s%s on cuda, bf16: worst relative loss difference %.3g over %zu steps (loss %.4f -> %.4f); "
              "device bytes after init %zu -> %zu (partition %zu); gathered peak %zu, persistent %zu; device peak "
              "%.1f -> %.1f MiB\n",
              param_device.c_str(), offload_optimizer ? " + offload_optimizer" : "", worst, plain.losses.size(), offloaded.losses.front(),
              offloaded.losses.back(), plain.device_bytes_after_init, offloaded.device_bytes_after_init, partition,
              offloaded.memory.gathered_peak, offloaded.memory.persistent_gathered,
              double(plain.device_peak) / (1 << 20), double(offloaded.device_peak) / (1 << 20));
}

INSTANTIATE_TEST_SUITE_P(Stores, ParamOffloadCuda, ::testing::Combine(::testing::Values("cpu", "nvme"), ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) ? "_with_offload_optimizer" : "_optimizer_on_gpu");
                         });

}  // namespace
}  // namespace zt::engine
