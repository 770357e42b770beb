// Checkpoints across ranks: exact resume under every stage (f32, bit for bit), and reload at
// another world size and stage, where training goes on with the losses a continuous run has.
// Smaller worlds are sub-groups of the launched one.
#include <gtest/gtest.h>

#include <filesystem>

#include "../comm/mpi_test_main.hpp"
#include "checkpoint_support.hpp"

namespace zt::engine {
namespace {

using testing::make_engine;
using testing::flat_parameters;
using testing::train_steps;

// A folder all ranks share, emptied by rank 0.
std::string fresh_dir(comm::ProcessGroup& world, const std::string& name) {
  const std::string dir = std::string(ZT_BINARY_DIR) + "/checkpoint_tests/np" + std::to_string(world.size()) + "/" + name;
  if (world.rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world.barrier().wait();
  return dir;
}

class ExactResume : public ::testing::TestWithParam<int> {};

TEST_P(ExactResume, TwentyStepsEqualTenSavedLoadedAndTen) {
  const int stage = GetParam();
  auto world = comm::world();
  const std::string dir = fresh_dir(*world, "exact_stage" + std::to_string(stage));

  auto straight = make_engine(stage, world, /*per_rank_data=*/true);
  const auto want = train_steps(*straight.engine, *straight.training_data, 20);

  auto first = make_engine(stage, world, true);
  auto got = train_steps(*first.engine, *first.training_data, 10);
  first.engine->save_checkpoint(dir, "", {{"epoch", 3}});
  first = {};

  // A fresh model (other initial weights) and fresh data: everything comes from the checkpoint.
  auto second = make_engine(stage, world, true, /*init_seed=*/99);
  const nlohmann::json client = second.engine->load_checkpoint(dir);
  EXPECT_EQ(client, (nlohmann::json{{"epoch", 3}}));
  EXPECT_EQ(second.engine->global_steps(), 10);
  EXPECT_EQ(second.training_data->position(), 10u);
  const auto rest = train_steps(*second.engine, *second.training_data, 10);
  got.insert(got.end(), rest.begin(), rest.end());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "stage " << stage << ", step " << i + 1;
  EXPECT_EQ(flat_parameters(*second.engine), flat_parameters(*straight.engine)) << "final parameters, stage " << stage;
}

INSTANTIATE_TEST_SUITE_P(Stages, ExactResume, ::testing::Values(0, 1, 2, 3),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

// bf16 storage: the parameters are the master weights rounded, so rounding the loaded master
// again restores them exactly, and resume stays bit for bit.
TEST(ExactResumeBf16, StagesTwoAndThree) {
  auto world = comm::world();
  for (int stage : {2, 3}) {
    const std::string dir = fresh_dir(*world, "exact_bf16_stage" + std::to_string(stage));
    auto straight = make_engine(stage, world, true, 5, testing::odd_gpt(), /*bf16=*/true);
    const auto want = train_steps(*straight.engine, *straight.training_data, 12);
    auto first = make_engine(stage, world, true, 5, testing::odd_gpt(), true);
    auto got = train_steps(*first.engine, *first.training_data, 6);
    first.engine->save_checkpoint(dir);
    auto second = make_engine(stage, world, true, 99, testing::odd_gpt(), true);
    second.engine->load_checkpoint(dir);
    const auto rest = train_steps(*second.engine, *second.training_data, 6);
    got.insert(got.end(), rest.begin(), rest.end());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "bf16 stage " << stage << ", step " << i + 1;
  }
}

struct Reshape {
  int save_world, save_stage, load_world, load_stage;
};

// Every rank draws the same batches, so every world size trains the same model: a continuous
// run on the whole world is the reference for a run saved by a sub-group of one size and stage
// and continued by a sub-group of another.
TEST(Reshard, ContinuesWithTheLossesOfAContinuousRun) {
  auto world = comm::world();
  const int n = world->size();
  auto reference = make_engine(0, world, /*per_rank_data=*/false);
  const auto want = train_steps(*reference.engine, *reference.training_data, 16);
  const std::vector<Reshape> cases{{4, 1, 2, 1}, {2, 2, 3, 3}, {4, 3, 1, 1}, {3, 0, 4, 2},
                                   {1, 3, 4, 0}, {4, 2, 3, 1}, {2, 1, 2, 3}, {3, 3, 2, 0}};
  int ran = 0;
  for (const Reshape& c : cases) {
    if (c.save_world > n || c.load_world > n) continue;
    ++ran;
    const std::string what = "saved at np " + std::to_string(c.save_world) + " stage " + std::to_string(c.save_stage) +
                             ", loaded at np " + std::to_string(c.load_world) + " stage " + std::to_string(c.load_stage);
    const std::string dir = fresh_dir(*world, "reshard_" + std::to_string(ran));
    std::vector<int> saving(size_t(c.save_world)), loading(size_t(c.load_world));
    for (int r = 0; r < c.save_world; ++r) saving[size_t(r)] = r;
    for (int r = 0; r < c.load_world; ++r) loading[size_t(r)] = n - 1 - r;  // other ranks where it can
    auto save_group = world->new_group(saving);
    auto load_group = world->new_group(loading);
    if (save_group) {
      auto run = make_engine(c.save_stage, save_group, false);
      const auto losses = train_steps(*run.engine, *run.training_data, 8);
      for (size_t i = 0; i < losses.size(); ++i) EXPECT_NEAR(losses[i], want[i], 1e-5 * want[i]) << what << ", step " << i + 1;
      run.engine->save_checkpoint(dir, "step8");
    }
    world->barrier().wait();
    if (load_group) {
      auto run = make_engine(c.load_stage, load_group, false, /*init_seed=*/77);
      run.engine->load_checkpoint(dir);
      EXPECT_EQ(run.engine->global_steps(), 8) << what;
      const auto losses = train_steps(*run.engine, *run.training_data, 8);
      for (size_t i = 0; i < losses.size(); ++i)
        EXPECT_NEAR(losses[i], want[8 + i], 1e-5 * want[8 + i]) << what << ", step " << 9 + i;
    }
    world->barrier().wait();
  }
  if (n == 1) EXPECT_EQ(ran, 0);
}

// Without the optimizer states the moments start again from zero: the weights are the saved
// ones, but the next steps differ from the continuous run's.
TEST(LoadFlags, ModuleOnlyRestoresWeightsAlone) {
  auto world = comm::world();
  const std::string dir = fresh_dir(*world, "module_only");
  auto run = make_engine(2, world, true);
  train_steps(*run.engine, *run.training_data, 6);
  run.engine->save_checkpoint(dir, "six");
  const auto saved = flat_parameters(*run.engine);
  auto fresh = make_engine(1, world, true, 42);
  fresh.engine->load_checkpoint(dir, "six", true, true, /*load_module_only=*/true);
  EXPECT_EQ(fresh.engine->global_steps(), 0);
  EXPECT_EQ(fresh.training_data->position(), 0u);
  EXPECT_EQ(flat_parameters(*fresh.engine), saved);
  EXPECT_EQ(fresh.engine->optimizer().step_count(), 0);
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
