// Checkpoints with offload_param: the checkpoint holds the f32 master weights, and a load
// rounds them into the parameter store (host memory or the NVMe file) that the next forward
// reads. Resume is exact: 10 steps, save, load into a fresh engine with other initial weights,
// 10 steps equals 20 steps bit for bit; checkpoints move between engines with and without
// offload_param.
#include <gtest/gtest.h>

#include <filesystem>

#include "../comm/mpi_test_main.hpp"
#include "checkpoint_support.hpp"

namespace zt::engine {
namespace {

using testing::flat_parameters;
using testing::train_steps;

std::string fresh_dir(comm::ProcessGroup& world, const std::string& name) {
  const std::string dir =
      std::string(ZT_BINARY_DIR) + "/checkpoint_tests/np" + std::to_string(world.size()) + "/param_offload_" + name;
  if (world.rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  world.barrier().wait();
  return dir;
}

struct Setting {
  bool bf16 = false;
  bool offload_optimizer = false;
  std::string param_device = "cpu";  // "none": plain stage 3; "nvme": files under nvme_path()
};

// Where the NVMe variant keeps its files (each rank its own file in it).
std::string nvme_path() {
  return std::string(ZT_BINARY_DIR) + "/checkpoint_tests/np" + std::to_string(comm::world()->size()) +
         "/param_offload_files";
}

Initialized make_engine(const Setting& s, std::shared_ptr<comm::ProcessGroup> group, uint64_t init_seed) {
  auto model = models::build_causal_lm(testing::odd_gpt());
  model->init_weights(init_seed);
  auto corpus = std::make_shared<data::MarkovCorpus>(
      data::MarkovCorpusOptions{testing::odd_gpt().vocab_size, 4, 1.0, 3, 100 + uint64_t(group->rank())});
  Config c = testing::make_config(3, group->size(), s.bf16);
  c.zero.offload_param.device = s.param_device;
  c.zero.offload_param.pin_memory = true;
  c.zero.offload_param.buffer_count = 2;
  c.zero.offload_param.nvme_path = nvme_path();
  c.zero.offload_param.max_in_cpu = 0;
  if (s.offload_optimizer) c.zero.offload_optimizer.device = "cpu";
  auto out = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c, corpus, group);
  EXPECT_EQ(out.engine->offloads_parameters(), s.param_device != "none");
  return out;
}

class ParamOffloadResume : public ::testing::TestWithParam<std::tuple<std::string, bool, bool>> {};

TEST_P(ParamOffloadResume, TwentyStepsEqualTenSavedLoadedAndTen) {
  const auto [device, bf16, offload_optimizer] = GetParam();
  auto world = comm::world();
  const std::string dir =
      fresh_dir(*world, device + (bf16 ? "_bf16" : "_f32") + (offload_optimizer ? "_opt" : ""));
  const Setting offloaded{bf16, offload_optimizer, device};

  auto straight = make_engine(offloaded, world, 5);
  const auto want = train_steps(*straight.engine, *straight.training_data, 20);
  // Offloading changes nothing in the arithmetic: the plain stage-3 run is the same curve.
  auto plain = make_engine({bf16, offload_optimizer, "none"}, world, 5);
  EXPECT_EQ(train_steps(*plain.engine, *plain.training_data, 20), want);

  auto first = make_engine(offloaded, world, 5);
  auto got = train_steps(*first.engine, *first.training_data, 10);
  first.engine->save_checkpoint(dir);
  first = {};
  // Other initial weights in the store: only a load that rewrites the store resumes exactly.
  auto second = make_engine(offloaded, world, 99);
  second.engine->load_checkpoint(dir);
  EXPECT_EQ(second.engine->global_steps(), 10);
  const auto rest = train_steps(*second.engine, *second.training_data, 10);
  got.insert(got.end(), rest.begin(), rest.end());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;
  EXPECT_EQ(flat_parameters(*second.engine), flat_parameters(*straight.engine));
}

INSTANTIATE_TEST_SUITE_P(Stores, ParamOffloadResume,
                         ::testing::Combine(::testing::Values("cpu", "nvme"), ::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) + (std::get<1>(info.param) ? "_bf16" : "_f32") +
                                  (std::get<2>(info.param) ? "_offload_optimizer" : "");
                         });

// A checkpoint of stage 3 without offload loads into an engine with it, and the other way round.
TEST(ParamOffloadCheckpoint, MovesBetweenEnginesWithAndWithoutOffload) {
  auto world = comm::world();
  auto reference = make_engine({false, false, "none"}, world, 5);
  const auto want = train_steps(*reference.engine, *reference.training_data, 12);
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"none", "cpu"}, {"cpu", "none"}, {"none", "nvme"},
                                 {"nvme", "cpu"}}) {
    const std::string what = "saved with offload_param " + from + ", loaded with " + to;
    const std::string dir = fresh_dir(*world, "move_" + from + "_" + to);
    auto saving = make_engine({false, false, from}, world, 5);
    train_steps(*saving.engine, *saving.training_data, 6);
    saving.engine->save_checkpoint(dir, "six");
    auto loading = make_engine({false, false, to}, world, 77);
    loading.engine->load_checkpoint(dir, "six");
    const auto rest = train_steps(*loading.engine, *loading.training_data, 6);
    for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(rest[i], want[6 + i]) << what << ", step " << 7 + i;
  }
}

}  // namespace
}  // namespace zt::engine

int main(int argc, char** argv) { return zt::comm::testing::run_mpi_tests(argc, argv); }
