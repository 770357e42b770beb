// The engine on one GPU (scripts/gpu-test): `zt train`'s loop with every parameter, gradient,
// master weight and optimizer state on CUDA, the local process group at world size 1, under
// ZeRO stages 0 and 3. In f32 the loss curve must follow the CPU's step for step; in bf16 (the
// GPU default: bf16 storage and compute, f32 master weights and AdamW) it must train. With the
// optimizer offloaded to the host (gradients down per bucket, the CPU AdamW, parameters up tile by
// tile through pinned buffers) the bf16 loss curve must follow the one of the optimizer on the
// device within bf16 rounding, at every stage, with one tile or many cycling through two buffers,
// and with the master weights and states swapped to files (NVMe offload).
// Without a GPU these tests skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "short_run.hpp"
#include "zt/core/device.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {
namespace {

using test_runs::short_run;

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

// A DeepSpeed config for a bf16 run at `stage`, the optimizer offloaded when asked (to NVMe when
// nvme_path is given, in sub-groups of 20000 elements).
std::string offload_config(int stage, bool offload, int64_t buffer_count, const std::string& name,
                           const std::string& nvme_path = "") {
  nlohmann::json j = {
      {"train_micro_batch_size_per_gpu", 8},
      {"gradient_accumulation_steps", 1},
      {"gradient_clipping", 1.0},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 5e-3}, {"betas", {0.9, 0.95}}, {"weight_decay", 0.01}}}}},
      {"bf16", {{"enabled", true}}},
      {"zero_optimization", {{"stage", stage}, {"reduce_bucket_size", 50000}, {"overlap_comm", true}}},
  };
  if (offload)
    j["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}, {"pin_memory", true}, {"buffer_count", buffer_count}};
  if (offload && !nvme_path.empty()) {
    j["zero_optimization"]["offload_optimizer"]["device"] = "nvme";
    j["zero_optimization"]["offload_optimizer"]["nvme_path"] = nvme_path;
    j["zero_optimization"]["sub_group_size"] = 20000;
    j["aio"] = {{"block_size", 65536}, {"queue_depth", 8}};
  }
  const std::string path = (std::filesystem::temp_directory_path() / ("zt_cuda_offload_" + name + ".json")).string();
  std::ofstream(path) << j.dump(1);
  return path;
}

class EngineCudaOffload : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  }
};

TEST_P(EngineCudaOffload, Bf16FollowsTheOptimizerOnTheDevice) {
  const int stage = GetParam();
  TrainOptions o = short_run("cuda", "bf16", stage);
  o.steps = 20;
  o.deepspeed_config = offload_config(stage, false, 4, "plain");
  const TrainResult plain = train(o, [](const std::string&) {});
  // One tile (64 MiB), then tiles of 16 KiB through two pinned buffers: every tile waits for the
  // upload of the one two before it; then to NVMe (a folder under the temp folder) in sub-groups of
  // 20000 elements through six swap buffers, with those tiles.
  const std::string nvme = (std::filesystem::temp_directory_path() / "zt_cuda_nvme").string();
  std::filesystem::create_directories(nvme);
  for (const auto& [tile_bytes, nvme_path] : {std::pair{"", ""}, {"16384", ""}, {"16384", nvme.c_str()}}) {
    SCOPED_TRACE(std::string("stage ") + std::to_string(stage) + ", ZT_OFFLOAD_TILE_BYTES=" + tile_bytes +
                 (*nvme_path ? ", nvme" : ""));
    setenv("ZT_OFFLOAD_TILE_BYTES", tile_bytes, 1);
    TrainOptions off = o;
    off.deepspeed_config = offload_config(stage, true, *nvme_path ? 6 : 2, "offload", nvme_path);
    std::vector<std::string> lines;
    const TrainResult offloaded = train(off, [&](const std::string& line) { lines.push_back(line); });
    unsetenv("ZT_OFFLOAD_TILE_BYTES");
    ASSERT_EQ(offloaded.steps.size(), plain.steps.size());
    const std::string where = *nvme_path ? "nvme (" + nvme + "/zt_optimizer_rank0_pid" : "host (pinned transfers)";
    EXPECT_NE(std::find_if(lines.begin(), lines.end(),
                           [&](const std::string& l) {
                             return l.rfind("parameters: cuda:0, gradients: cuda:0, master weights and optimizer "
                                            "states: " + where, 0) == 0;
                           }),
              lines.end())
        << where;
    double worst = 0;
    for (size_t i = 0; i < plain.steps.size(); ++i) {
      const double a = plain.steps[i].loss, b = offloaded.steps[i].loss;
      worst = std::max(worst, std::fabs(a - b) / a);
      EXPECT_LT(std::fabs(a - b), 1e-2 * a) << "step " << i + 1 << ": device optimizer " << a << ", offloaded " << b;
    }
    EXPECT_EQ(offloaded.memory.master_weights > 0, !*nvme_path);
    EXPECT_EQ(offloaded.memory.nvme > 0, bool(*nvme_path));
    EXPECT_LT(offloaded.device_peak_bytes, plain.device_peak_bytes) << "master and moments left the device";
    std::printf("stage %d bf16 offloaded%s (tile bytes %s): worst relative loss difference %.3g over %zu steps, gpu peak "
                "%.1f MiB (%.1f MiB without offload)\n",
                stage, *nvme_path ? " to nvme" : "", *tile_bytes ? tile_bytes : "default", worst, plain.steps.size(),
                double(offloaded.device_peak_bytes) / (1 << 20), double(plain.device_peak_bytes) / (1 << 20));
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, EngineCudaOffload, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace zt::engine
