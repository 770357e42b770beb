// Activation checkpointing through the engine on one CPU rank (stage 0, f32 and bf16 storage):
// the recomputation is the same arithmetic, so checkpointed training equals training without it
// bit for bit (losses, gradient norms, final parameters) for gpt2-tiny and llama-tiny, with and
// without cpu_checkpointing, all or the first number_checkpoints blocks, with gradient
// accumulation; a user-built model in Checkpoints does too. `zt train` turns it on from a
// DeepSpeed config or its flags, and says how activations are kept. Multi-rank stages:
// activation_checkpointing_mpi.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "checkpointing_runs.hpp"
#include "zt/engine/activation_checkpointing.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::engine {
namespace {

using namespace testing_runs;

struct Variant {
  std::string name;
  ActivationCheckpointingConfig ac;
  std::string activations;  // the end of Engine::placement()
};

std::vector<Variant> variants() {
  return {{"all", checkpointing(false), "activations: checkpointed at 2 of 2 blocks, inputs in host memory"},
          {"all_cpu", checkpointing(true), "activations: checkpointed at 2 of 2 blocks, inputs in host memory"},
          {"first_of_two", checkpointing(false, 1), "activations: checkpointed at 1 of 2 blocks, inputs in host memory"},
          {"first_of_two_cpu", checkpointing(true, 1), "activations: checkpointed at 1 of 2 blocks, inputs in host memory"}};
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class CheckpointedTraining : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(CheckpointedTraining, BitEqualToTrainingWithoutIt) {
  const auto [model, bf16] = GetParam();
  const TrainingRun plain = train_tiny(model, 0, bf16, {}, 2);
  EXPECT_TRUE(ends_with(plain.placement, "activations: kept for backward")) << plain.placement;
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    const TrainingRun checkpointed = train_tiny(model, 0, bf16, v.ac, 2);
    expect_same_training(checkpointed, plain);
    EXPECT_TRUE(ends_with(checkpointed.placement, v.activations)) << checkpointed.placement;
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, CheckpointedTraining,
                         ::testing::Combine(::testing::Values("gpt2-tiny", "llama-tiny"), ::testing::Values(false, true)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == "gpt2-tiny" ? "gpt2" : "llama") +
                                  (std::get<1>(info.param) ? "_bf16" : "_f32");
                         });

TEST(CheckpointedUserModel, TrainsIdenticallyInCheckpoints) {
  const TrainingRun plain = train_user_model(false, 0, {}, 2);
  const TrainingRun checkpointed = train_user_model(true, 0, {}, 2);
  expect_same_training(checkpointed, plain);
  EXPECT_TRUE(ends_with(checkpointed.placement, "activations: checkpointed at 3 modules, inputs in host memory"))
      << checkpointed.placement;
  // The section configures the Checkpoints the model has.
  expect_same_training(train_user_model(true, 0, checkpointing(true), 2), plain);
}

TEST(CheckpointedUserModel, SectionErrorsNameTheKey) {
  auto user = user_model(true);
  EXPECT_NO_THROW(apply_activation_checkpointing(*user, checkpointing(true)));
  user->visit([](const std::string&, nn::Module& m) {
    if (auto* c = dynamic_cast<nn::Checkpoint*>(&m)) EXPECT_TRUE(c->options().cpu_checkpointing);
  });
  try {
    apply_activation_checkpointing(*user, checkpointing(false, 2));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("activation_checkpointing.number_checkpoints = 2: it counts the decoder "
                                         "blocks of a causal LM; this model (Sequential)"),
              std::string::npos)
        << e.what();
  }
  try {
    apply_activation_checkpointing(*user_model(false), checkpointing(false));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("activation_checkpointing: this model (Sequential) has no decoder blocks and "
                                         "no nn::Checkpoint modules"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(apply_activation_checkpointing(*user_model(false), {}));  // no section: nothing asked
}

TrainOptions short_train() {
  TrainOptions o;  // gpt2-tiny on the synthetic corpus
  o.steps = 6;
  o.batch_size = 4;
  o.seq_len = 32;
  o.warmup_steps = 2;
  o.log_every = 100;
  return o;
}

TEST(TrainCheckpointing, FlagsAndConfigSectionTurnItOn) {
  EXPECT_FALSE(engine_config(short_train(), 1).activation_checkpointing.enabled);
  TrainOptions flag = short_train();
  flag.activation_checkpointing = true;
  EXPECT_TRUE(engine_config(flag, 1).activation_checkpointing.enabled);
  EXPECT_FALSE(engine_config(flag, 1).activation_checkpointing.cpu_checkpointing);
  TrainOptions cpu = short_train();
  cpu.cpu_checkpointing = true;  // implies checkpointing
  EXPECT_TRUE(engine_config(cpu, 1).activation_checkpointing.enabled);
  EXPECT_TRUE(engine_config(cpu, 1).activation_checkpointing.cpu_checkpointing);

  const auto path = std::filesystem::temp_directory_path() / ("zt_ckpt_ds_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << R"({"train_micro_batch_size_per_gpu": 4,
    "activation_checkpointing": {"partition_activations": true, "number_checkpoints": 1}})";
  TrainOptions ds = short_train();
  ds.deepspeed_config = path.string();
  const Config from_file = engine_config(ds, 1);
  EXPECT_TRUE(from_file.activation_checkpointing.enabled);
  EXPECT_EQ(from_file.activation_checkpointing.number_checkpoints, 1);
  EXPECT_FALSE(from_file.activation_checkpointing.cpu_checkpointing);
  ds.cpu_checkpointing = true;  // the flag adds to the file's section
  EXPECT_TRUE(engine_config(ds, 1).activation_checkpointing.cpu_checkpointing);
  EXPECT_EQ(engine_config(ds, 1).activation_checkpointing.number_checkpoints, 1);
  std::filesystem::remove(path);
}

TEST(TrainCheckpointing, SameLossCurveAndTheLineSaysSo) {
  std::vector<std::string> lines;
  const TrainResult plain = train(short_train(), [](const std::string&) {});
  TrainOptions o = short_train();
  o.cpu_checkpointing = true;
  const TrainResult checkpointed = train(o, [&](const std::string& line) { lines.push_back(line); });
  ASSERT_EQ(checkpointed.steps.size(), plain.steps.size());
  for (size_t i = 0; i < plain.steps.size(); ++i) EXPECT_EQ(checkpointed.steps[i].loss, plain.steps[i].loss) << i;
  bool said = false;
  for (const auto& line : lines)
    said |= line == "parameters: cpu, gradients: cpu, master weights and optimizer states: cpu, activations: "
                    "checkpointed at 2 of 2 blocks, inputs in host memory";
  EXPECT_TRUE(said) << "no placement line with the activations among " << lines.size() << " lines";
}

}  // namespace
}  // namespace zt::engine
