// The memory estimates against DeepSpeed's formulas for known cases (worked out by hand from
// estimate_zero2_model_states_mem_needs and estimate_zero3_model_states_mem_needs), what NVMe
// offload of the optimizer moves off the host, zt's own engine per rank, the table layout, and the
// largest layer of the built-in models.
#include <gtest/gtest.h>

#include "zt/core/error.hpp"
#include "zt/engine/memory_estimator.hpp"
#include "zt/models/builtin.hpp"

namespace zt::engine {
namespace {

constexpr int64_t kBillion = 1000000000;

TEST(MemoryEstimator, Zero2OneNodeEightGpus) {
  const MemoryEstimate e = estimate_zero2(kBillion, {8, 1, 1.5});
  ASSERT_EQ(e.rows.size(), 2u);
  EXPECT_TRUE(e.rows[0].offload_optimizer);
  EXPECT_EQ(e.rows[0].needs.gpu_bytes, 2 * kBillion);   // 2 Ψ
  EXPECT_EQ(e.rows[0].needs.cpu_bytes, 48 * kBillion);  // Ψ max(4 * 8, 16) 1.5
  EXPECT_FALSE(e.rows[1].offload_optimizer);
  EXPECT_EQ(e.rows[1].needs.gpu_bytes, 4250000000);     // 2 Ψ + 18 Ψ / 8
  EXPECT_EQ(e.rows[1].needs.cpu_bytes, 48 * kBillion);  // Ψ 4 * 8 * 1.5
  // One GPU: the offloaded CPU side is floored at 16 bytes per parameter.
  EXPECT_EQ(estimate_zero2_model_states_mem_needs(kBillion, true, {1, 1, 1.0}).cpu_bytes, 16 * kBillion);
}

TEST(MemoryEstimator, Zero3TwoNodesFourGpusEach) {
  const int64_t largest = 50000000;
  const MemoryEstimate e = estimate_zero3(kBillion, largest, {4, 2, 1.5});
  ASSERT_EQ(e.rows.size(), 6u);
  struct Want {
    bool offload_param, offload_optimizer, zero_init;
    int64_t cpu, gpu;
  };
  const Want want[] = {
      {true, true, true, 13500000000, 200000000},    // Ψ 18 (1/2) 1.5; 4L
      {true, true, false, 24000000000, 200000000},   // Ψ max(16, 9) 1.5
      {false, true, true, 12000000000, 450000000},   // Ψ 16 (1/2) 1.5; 4L + 2Ψ/8
      {false, true, false, 24000000000, 450000000},  // Ψ max(16, 8) 1.5
      {false, false, true, 1200000000, 2450000000},  // L 4 * 4 * 1.5; 4L + 18Ψ/8
      {false, false, false, 24000000000, 2450000000},
  };
  for (size_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(e.rows[i].offload_param, want[i].offload_param);
    EXPECT_EQ(e.rows[i].offload_optimizer, want[i].offload_optimizer);
    EXPECT_EQ(e.rows[i].zero_init, want[i].zero_init);
    EXPECT_EQ(e.rows[i].needs.cpu_bytes, want[i].cpu);
    EXPECT_EQ(e.rows[i].needs.gpu_bytes, want[i].gpu);
  }
}

TEST(MemoryEstimator, TablesInDeepSpeedsLayout) {
  // DeepSpeed's table, then the NVMe rows with their own column.
  EXPECT_EQ(format_memory_estimate(estimate_zero2(kBillion, {8, 1, 1.5})),
            "Estimated memory needed for params, optim states and gradients for a:\n"
            "HW: Setup with 1 node, 8 GPUs per node.\n"
            "SW: Model with 1000M total params.\n"
            "  per CPU  |  per GPU |   Options\n"
            "   44.70GB |   1.86GB | offload_optimizer=cpu \n"
            "   44.70GB |   3.96GB | offload_optimizer=none\n"
            "What offload_optimizer=nvme moves off the host (fp32 master weights and optimizer states):\n"
            "  per CPU  |  per GPU | per NVMe |   Options\n"
            "   44.70GB |   1.86GB |  11.18GB | offload_optimizer=nvme\n");
  const std::string z3 = format_memory_estimate(estimate_zero3(kBillion, 50000000, {4, 2, 1.5}));
  EXPECT_NE(z3.find("HW: Setup with 2 nodes, 4 GPUs per node.\n"
                    "SW: Model with 1000M total params, 50M largest layer params.\n"),
            std::string::npos)
      << z3;
  EXPECT_NE(z3.find("   12.57GB |   0.19GB | offload_param=cpu , offload_optimizer=cpu , zero_init=1\n"),
            std::string::npos)
      << z3;
  EXPECT_NE(z3.find("   22.35GB |   2.28GB | offload_param=none, offload_optimizer=none, zero_init=0\n"),
            std::string::npos)
      << z3;
}

// NVMe offload of the optimizer: DeepSpeed's offload rows with 12 bytes a parameter (fp32 master,
// two Adam moments) moved from the CPU to NVMe, per node.
TEST(MemoryEstimator, WhatNvmeMovesOffTheHost) {
  // ZeRO-2, one GPU: the CPU side loses its floor of 16 (16 - 12 = 4 per parameter, under 4N = 4).
  const MemoryNeeds z2 = estimate_zero2_nvme_mem_needs(kBillion, {1, 1, 1.0});
  EXPECT_EQ(z2.gpu_bytes, 2 * kBillion);
  EXPECT_EQ(z2.cpu_bytes, 4 * kBillion);
  EXPECT_EQ(z2.nvme_bytes, 12 * kBillion);
  EXPECT_EQ(estimate_zero2_model_states_mem_needs(kBillion, true, {1, 1, 1.0}).cpu_bytes - z2.cpu_bytes, z2.nvme_bytes);
  // ZeRO-3 on 2 nodes of 4 GPUs: k = 18 - 12 = 6 (parameters offloaded too) or 16 - 12 = 4.
  const int64_t largest = 50000000;
  const MemoryEstimate e = estimate_zero3(kBillion, largest, {4, 2, 1.5});
  ASSERT_EQ(e.nvme_rows.size(), 4u);
  struct Want {
    bool offload_param, zero_init;
    int64_t cpu, gpu, nvme;
  };
  const Want want[] = {
      {true, true, 4500000000, 200000000, 6 * kBillion},     // Ψ 6 (1/2) 1.5; 4L; 12Ψ/2
      {true, false, 24000000000, 200000000, 6 * kBillion},   // Ψ max(16, 3) 1.5
      {false, true, 3000000000, 450000000, 6 * kBillion},    // Ψ 4 (1/2) 1.5; 4L + 2Ψ/8
      {false, false, 24000000000, 450000000, 6 * kBillion},  // Ψ max(16, 2) 1.5
  };
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const MemoryEstimateRow& row = e.nvme_rows[i];
    EXPECT_TRUE(row.optimizer_nvme && row.offload_optimizer);
    EXPECT_EQ(row.offload_param, want[i].offload_param);
    EXPECT_EQ(row.zero_init, want[i].zero_init);
    EXPECT_EQ(row.needs.cpu_bytes, want[i].cpu);
    EXPECT_EQ(row.needs.gpu_bytes, want[i].gpu);
    EXPECT_EQ(row.needs.nvme_bytes, want[i].nvme);
  }
  const std::string table = format_memory_estimate(e);
  EXPECT_NE(table.find("    4.19GB |   0.19GB |   5.59GB | offload_param=cpu , offload_optimizer=nvme, zero_init=1\n"),
            std::string::npos)
      << table;
}

// zt's engine per rank: 7B on one GPU (the target of optimizer offload) and on 4 ranks at stage 3.
TEST(MemoryEstimator, ZtPerRank) {
  const int64_t p = 7 * kBillion;
  ZtEstimateOptions o;
  o.stage = 1;
  // No offload: bf16 parameters and gradients, f32 master and two moments on the GPU.
  EXPECT_EQ(estimate_zt_model_states(p, o).gpu_bytes, 16 * p);
  EXPECT_EQ(estimate_zt_model_states(p, o).cpu_bytes, 0);
  // To the host: 12 bytes of master and moments and the 2-byte gradient copy, 4 tiles of 64 MiB.
  o.offload_optimizer = "cpu";
  MemoryNeeds m = estimate_zt_model_states(p, o);
  EXPECT_EQ(m.gpu_bytes, 4 * p);
  EXPECT_EQ(m.cpu_bytes, 14 * p + 4 * (int64_t(64) << 20));
  // To NVMe: the host keeps the gradient copy, the tiles and 4 swap buffers of one sub-group.
  o.offload_optimizer = "nvme";
  o.sub_group_size = 100000000;
  m = estimate_zt_model_states(p, o);
  EXPECT_EQ(m.cpu_bytes, 2 * p + 4 * (int64_t(64) << 20) + 4 * 4 * 100000000);
  EXPECT_EQ(m.nvme_bytes, 12 * p);
  // Stage 3 on 4 ranks: everything partitioned.
  o = ZtEstimateOptions{};
  o.world_size = 4;
  EXPECT_EQ(estimate_zt_model_states(p, o).gpu_bytes, 16 * p / 4);
  o.stage = 2;
  EXPECT_EQ(estimate_zt_model_states(p, o).gpu_bytes, 2 * p + 14 * p / 4);
  o.stage = 0;
  o.offload_optimizer = "cpu";
  EXPECT_THROW(estimate_zt_model_states(p, o), Error);
  const std::string table = format_zt_estimate(p, 1, 4, 1000000000);
  EXPECT_NE(table.find("      1 | cpu               |   26.08GB |   91.52GB |   0.00GB\n"), std::string::npos) << table;
}

TEST(MemoryEstimator, Json) {
  const nlohmann::json j = memory_estimate_json(estimate_zero3(kBillion, 50000000, {4, 2, 1.5}));
  EXPECT_EQ(j["stage"], 3);
  EXPECT_EQ(j["largest_layer_params"], 50000000);
  EXPECT_EQ(j["rows"][4]["per_gpu_bytes"], 2450000000);
  EXPECT_EQ(j["rows"][0]["offload_param"], "cpu");
  EXPECT_EQ(j["rows"][0]["zero_init"], true);
  EXPECT_EQ(j["rows"].size(), 10u);  // DeepSpeed's 6, then the 4 NVMe rows
  EXPECT_EQ(j["rows"][6]["offload_optimizer"], "nvme");
  EXPECT_EQ(j["rows"][6]["per_nvme_bytes"], 6 * kBillion);
}

TEST(MemoryEstimator, LargestLayerOfBuiltinModels) {
  const models::TransformerConfig gpt2 = models::builtin_config("gpt2");
  EXPECT_EQ(largest_layer_parameters(gpt2), 50257 * 768);  // the token embedding
  models::TransformerConfig wide = gpt2;
  wide.vocab_size = 10;
  EXPECT_EQ(largest_layer_parameters(wide), 768 * 3072 + 3072);  // then the MLP's c_fc
  const models::TransformerConfig llama = models::builtin_config("tinyllama-1.1b");
  EXPECT_EQ(largest_layer_parameters(llama), llama.vocab_size * llama.hidden_size);
}

TEST(MemoryEstimator, BadInputsAreErrors) {
  EXPECT_THROW(estimate_zero2(0, {}), Error);
  EXPECT_THROW(estimate_zero2(10, {0, 1, 1.5}), Error);
  EXPECT_THROW(estimate_zero3(10, 20, {}), Error);
}

}  // namespace
}  // namespace zt::engine
