// Bad model folders end in errors that name the file and what is wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::models {
namespace {

namespace fs = std::filesystem;

class BadModelFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zt_bad_model_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  // Expects an error whose message contains every one of the fragments.
  void expect_error(const std::vector<std::string>& fragments) {
    try {
      load_pretrained(dir_.string());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
};

const char* kGood = R"({"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 176, "max_position_embeddings": 128,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5})";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  return text.replace(text.find(from), from.size(), to);
}

TEST_F(BadModelFolder, MissingConfig) { expect_error({"config.json"}); }

TEST_F(BadModelFolder, ConfigThatIsNotJson) {
  write("config.json", "{\"model_type\": \"llama\",");
  expect_error({"config.json", "not valid JSON"});
}

TEST_F(BadModelFolder, MissingKey) {
  write("config.json", R"({"model_type": "llama", "vocab_size": 256})");
  expect_error({"config.json", "hidden_size"});
}

TEST_F(BadModelFolder, WrongType) {
  write("config.json", R"({"model_type": "gpt2", "vocab_size": "many", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64})");
  expect_error({"config.json", "vocab_size", "wrong type"});
}

TEST_F(BadModelFolder, UnsupportedArchitecture) {
  write("config.json", R"({"model_type": "bert"})");
  expect_error({"model_type", "bert", "gpt2, llama, mistral, qwen2"});
}

TEST_F(BadModelFolder, UnsupportedRopeScaling) {
  write("config.json", std::string(kGood).replace(1, 0, R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0}, )"));
  expect_error({"rope_scaling", "yarn"});
}

TEST_F(BadModelFolder, HeadsThatDoNotDivide) {
  write("config.json", replaced(kGood, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"));
  expect_error({"num_key_value_heads"});
}

TEST_F(BadModelFolder, MissingWeights) {
  write("config.json", kGood);
  expect_error({"model.safetensors"});
}

TEST_F(BadModelFolder, TruncatedWeights) {
  const std::string fixture = std::string(ZT_FIXTURES_DIR) + "/hf/tiny-llama";
  if (!fs::exists(fixture)) GTEST_SKIP();
  fs::copy_file(fixture + "/config.json", dir_ / "config.json");
  std::ifstream in(fixture + "/model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write("model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_error({"model.safetensors"});
}

TEST_F(BadModelFolder, WeightsOfAnotherShape) {
  const std::string fixture = std::string(ZT_FIXTURES_DIR) + "/hf/tiny-llama";
  if (!fs::exists(fixture)) GTEST_SKIP();
  fs::copy_file(fixture + "/model.safetensors", dir_ / "model.safetensors");
  write("config.json", replaced(kGood, "176", "128"));
  expect_error({"model.safetensors", "mlp.gate_proj.weight", "shape"});
}

TEST(BuiltinModels, ParameterCountsMatchTheBuiltModels) {
  for (const std::string& name : {"gpt2-tiny", "llama-tiny", "gpt2-cpu-bench"}) {
    const TransformerConfig c = builtin_config(name);
    EXPECT_EQ(build_causal_lm(c)->parameter_count(), c.parameter_count()) << name;
  }
  EXPECT_EQ(builtin_config("gpt2").parameter_count(), 124439808);  // GPT-2 small as published
}

TEST(Config, RoundTripsThroughHuggingFaceJson) {
  for (const std::string& name : {"gpt2-tiny", "llama-tiny"}) {
    const TransformerConfig c = builtin_config(name);
    const TransformerConfig back = TransformerConfig::from_json(c.to_json(), "round trip");
    EXPECT_EQ(back.to_json(), c.to_json()) << name;
    EXPECT_EQ(back.parameter_count(), c.parameter_count());
  }
}

}  // namespace
}  // namespace zt::models
