// Single-process checkpoint tests: a kill during a save leaves the previous checkpoint
// loadable; damaged or mismatched checkpoints are clear errors; export to Hugging Face and
// safetensors holds the master weights.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "checkpoint_support.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::engine {
namespace {

namespace fs = std::filesystem;
using testing::make_engine;
using testing::flat_parameters;
using testing::odd_gpt;
using testing::train_steps;

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(ZT_BINARY_DIR) + "/checkpoint_tests/single/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Runs f and returns its error message ("" when it did not throw).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(message, part) \
  EXPECT_NE((message).find(part), std::string::npos) << "error: '" << (message) << "' lacks '" << (part) << "'"

class KillDuringSave : public ::testing::TestWithParam<const char*> {};

// The child process saves tag "b" and is killed (SIGKILL) at a point inside the save; "a"
// stays loadable, and `latest` names "a" unless the kill came after it was rewritten.
TEST_P(KillDuringSave, LeavesThePreviousCheckpointLoadable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string point = GetParam();
  const std::string dir = fresh_dir("kill_" + point);
  auto run = make_engine(1, comm::init_process_group(), true);
  train_steps(*run.engine, *run.training_data, 3);
  run.engine->save_checkpoint(dir, "a");
  const auto at_a = flat_parameters(*run.engine);
  train_steps(*run.engine, *run.training_data, 2);
  EXPECT_EXIT(
      {
        set_checkpoint_fault_hook([&](const std::string& p) {
          if (p == point) raise(SIGKILL);
        });
        run.engine->save_checkpoint(dir, "b");
      },
      ::testing::KilledBySignal(SIGKILL), "");
  EXPECT_EQ(read_latest_tag(dir), "a");
  auto fresh = make_engine(1, comm::init_process_group(), true, 8);
  fresh.engine->load_checkpoint(dir);
  EXPECT_EQ(fresh.engine->global_steps(), 3);
  EXPECT_EQ(flat_parameters(*fresh.engine), at_a);
  // The next save completes and becomes the latest.
  run.engine->save_checkpoint(dir, "b");
  EXPECT_EQ(read_latest_tag(dir), "b");
}

INSTANTIATE_TEST_SUITE_P(Points, KillDuringSave,
                         ::testing::Values("shard_partial", "shards_written", "meta_written", "published"));

TEST(KillDuringSave, ResavingTheSameTagKeepsTheOldOneUntilTheNewOneIsWhole) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string dir = fresh_dir("kill_same_tag");
  auto run = make_engine(0, comm::init_process_group(), true);
  train_steps(*run.engine, *run.training_data, 2);
  run.engine->save_checkpoint(dir, "t");
  const auto saved = flat_parameters(*run.engine);
  train_steps(*run.engine, *run.training_data, 2);
  EXPECT_EXIT(
      {
        set_checkpoint_fault_hook([](const std::string& p) {
          if (p == "meta_written") raise(SIGKILL);
        });
        run.engine->save_checkpoint(dir, "t");
      },
      ::testing::KilledBySignal(SIGKILL), "");
  auto fresh = make_engine(0, comm::init_process_group(), true, 8);
  fresh.engine->load_checkpoint(dir);
  EXPECT_EQ(flat_parameters(*fresh.engine), saved);
}

struct Saved {
  std::string dir, tag_dir;
};

Saved save_small(const std::string& name, int stage = 1) {
  Saved s{fresh_dir(name), ""};
  auto run = make_engine(stage, comm::init_process_group(), true);
  train_steps(*run.engine, *run.training_data, 2);
  run.engine->save_checkpoint(s.dir, "t");
  s.tag_dir = s.dir + "/t";
  return s;
}

std::string load_error(const std::string& dir, const models::TransformerConfig& model = odd_gpt(), const std::string& tag = "") {
  auto run = make_engine(1, comm::init_process_group(), true, 5, model);
  return error_of([&] { run.engine->load_checkpoint(dir, tag); });
}

TEST(Corruption, TruncatedShardNamesTheFile) {
  const Saved s = save_small("truncated");
  const std::string shard = s.tag_dir + "/" + checkpoint_shard_name(0, 1);
  fs::resize_file(shard, fs::file_size(shard) - 100);
  const std::string e = load_error(s.dir);
  EXPECT_ERROR_HAS(e, shard);
}

TEST(Corruption, MissingShardNamesTheFileAndTheRank) {
  const Saved s = save_small("missing_shard");
  fs::remove(s.tag_dir + "/" + checkpoint_shard_name(0, 1));
  const std::string e = load_error(s.dir);
  EXPECT_ERROR_HAS(e, "missing shard");
  EXPECT_ERROR_HAS(e, checkpoint_shard_name(0, 1));
}

TEST(Corruption, ShardOfAnotherSaveIsRefused) {
  const Saved s = save_small("other_save");
  const Saved other = save_small("other_save_source");
  fs::copy_file(other.tag_dir + "/" + checkpoint_shard_name(0, 1), s.tag_dir + "/" + checkpoint_shard_name(0, 1),
                fs::copy_options::overwrite_existing);
  EXPECT_ERROR_HAS(load_error(s.dir), "another save");
}

TEST(Corruption, TruncatedMetadataAndMissingLatest) {
  const Saved s = save_small("meta");
  {
    std::ofstream out(s.tag_dir + "/meta.json", std::ios::trunc);
    out << "{\"format\": \"zt-zero-checkpoint\", \"format_ver";
  }
  EXPECT_ERROR_HAS(load_error(s.dir), s.tag_dir + "/meta.json");
  fs::remove(s.dir + "/latest");
  EXPECT_ERROR_HAS(load_error(s.dir), "latest");
  EXPECT_ERROR_HAS(load_error(s.dir, odd_gpt(), "nope"), "no tag 'nope'");
}

TEST(Corruption, AnotherModelNamesTheParameter) {
  const Saved s = save_small("other_model");
  const std::string e = load_error(s.dir, odd_gpt(37, 15));
  EXPECT_ERROR_HAS(e, "transformer.wte.weight");
  EXPECT_ERROR_HAS(e, "(37, 12)");
}

TEST(Corruption, DifferentVocabularyIsNamed) {
  const Saved s = save_small("vocab");
  EXPECT_ERROR_HAS(load_error(s.dir, odd_gpt(40)), "vocabulary of 37 tokens, the model 40");
}

TEST(Corruption, OtherOptimizerStatesAreRefusedUnlessSkipped) {
  const Saved s = save_small("optimizer");
  auto model = models::build_causal_lm(odd_gpt());
  model->init_weights(1);
  Config c = testing::make_config(1, 1);
  c.optimizer = OptimizerConfig{"Lion", {{"lr", 1e-4}}};
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c).engine;
  EXPECT_ERROR_HAS(error_of([&] { engine->load_checkpoint(s.dir); }), "AdamW");
  engine->load_checkpoint(s.dir, "", /*load_optimizer_states=*/false);
  EXPECT_EQ(engine->global_steps(), 2);
}

TEST(Export, HuggingFaceFolderAndSafetensorsHoldTheMasterWeights) {
  const std::string dir = fresh_dir("export");
  auto run = make_engine(3, comm::init_process_group(), true);
  train_steps(*run.engine, *run.training_data, 3);
  run.engine->save_checkpoint(dir);
  const auto want = run.engine->full_parameters();

  const std::string hf = dir + "/hf";
  export_checkpoint_hf(dir, hf, 4000);  // several shards
  EXPECT_TRUE(fs::exists(hf + "/model.safetensors.index.json"));
  auto loaded = models::load_pretrained(hf);
  EXPECT_EQ(loaded->config().to_json(), odd_gpt().to_json());
  const auto params = loaded->named_parameters();
  ASSERT_EQ(params.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(params[i].first, want[i].first);
    EXPECT_EQ(params[i].second->data.to_floats(), want[i].second.to_floats()) << want[i].first;
  }

  const std::string file = dir + "/out/weights.safetensors";
  export_checkpoint_safetensors(dir + "/global_step3", file);
  io::SafetensorsReader reader(file);
  for (const auto& [name, t] : want) EXPECT_EQ(reader.read(name).to_floats(), t.to_floats()) << name;
}

}  // namespace
}  // namespace zt::engine
