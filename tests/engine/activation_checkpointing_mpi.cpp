// Activation checkpointing under the sharded stages on several CPU ranks: a checkpointed block's
// backward re-runs its forward, so stage 3 gathers its parameters again, yet every parameter use
// is counted once (gradients become ready when they would without it), the prefetch order stays
// the same from step to step, and training equals training without checkpointing bit for bit
// (losses, gradient norms, final parameters) for gpt2-tiny, llama-tiny and a user-built model,
// with gradient accumulation, cpu_checkpointing and a partial number_checkpoints.
#include <gtest/gtest.h>

#include "../comm/mpi_test_main.hpp"
#include "checkpointing_runs.hpp"

namespace zt::engine {
namespace {

using namespace testing_runs;

class ShardedCheckpointing : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(ShardedCheckpointing, BitEqualToTheSameStageWithoutIt) {
  const auto [model, stage] = GetParam();
  for (int64_t gas : {1, 2}) {
    SCOPED_TRACE(testing::Message() << model << " stage " << stage << ", accumulation " << gas);
    const TrainingRun plain = train_tiny(model, stage, false, {}, gas);
    const std::vector<std::pair<bool, std::optional<int64_t>>> settings = {
        {false, std::nullopt}, {true, std::nullopt}, {true, 1}};
    for (const auto& [cpu, number] : settings) {
      SCOPED_TRACE(testing::Message() << "cpu_checkpointing " << cpu << ", number_checkpoints "
                                      << (number ? std::to_string(*number) : "all"));
      const TrainingRun checkpointed = train_tiny(model, stage, false, checkpointing(cpu, number), gas);
      expect_same_training(checkpointed, plain);
      // Every micro-batch runs the modules in the order of the one before: prefetching stays on.
      EXPECT_EQ(checkpointed.trace_breaks, 0);
    }
    EXPECT_EQ(plain.trace_breaks, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, ShardedCheckpointing,
                         ::testing::Combine(::testing::Values("gpt2-tiny", "llama-tiny"), ::testing::Values(2, 3)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == "gpt2-tiny" ? "gpt2" : "llama") + "_stage" +
                                  std::to_string(std::get<1>(info.param));
                         });

TEST(ShardedCheckpointing, UserModelAtStage3) {
  for (int64_t gas : {1, 2}) {
    SCOPED_TRACE(testing::Message() << "accumulation " << gas);
    const TrainingRun plain = train_user_model(false, 3, {}, gas);
    const TrainingRun checkpointed = train_user_model(true, 3, checkpointing(true), gas);
    expect_same_training(checkpointed, plain);
    EXPECT_EQ(checkpointed.trace_breaks, 0);
  }
}

// bf16 storage computed in f32 on CPU ranks: the coordinator materializes each module's
// parameters for its use, the recomputation included.
TEST(ShardedCheckpointing, Bf16Stage3) {
  const TrainingRun plain = train_tiny("llama-tiny", 3, true, {}, 2, 6);
  expect_same_training(train_tiny("llama-tiny", 3, true, checkpointing(false), 2, 6), plain);
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
