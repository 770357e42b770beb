// Fine-tuning a Hugging Face model from its folder and exporting it back as a folder that loads
// to the same logits.
#include <gtest/gtest.h>

#include <filesystem>

#include "zt/data/markov_corpus.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/causal_lm.hpp"

namespace zt::engine {
namespace {

namespace fs = std::filesystem;

TEST(FineTune, TinyLlamaFromItsFolderAndBack) {
  const std::string source = std::string(ZT_FIXTURES_DIR) + "/hf/tiny-llama";
  if (!fs::exists(source)) GTEST_SKIP() << "no fixtures at " << source;
  auto model = models::load_pretrained(source);
  const auto original = models::load_pretrained(source)->named_parameters();

  nlohmann::json j = {{"train_micro_batch_size_per_gpu", 4},
                      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 3e-3}}}}},
                      {"bf16", {{"enabled", false}}},
                      {"zero_optimization", {{"stage", 2}}}};
  auto engine = initialize(model, std::make_shared<nn::CrossEntropyLoss>(), Config::from_json(j, 1)).engine;
  data::MarkovCorpus corpus({256, 8, 1.0, 1, 0});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    const data::Batch b = corpus.next_batch(4, 32);
    const double loss = engine->forward(b.inputs, b.targets);
    engine->backward();
    engine->step();
    (step == 0 ? first : last) = loss;
  }
  EXPECT_LT(last, first);

  const fs::path out = fs::temp_directory_path() / ("zt_finetuned_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const auto trained = engine->full_parameters();
  models::save_pretrained(model->config(), trained, out.string(), 40000);  // small shards: exercises the index
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));

  auto reloaded = models::load_pretrained(out.string());
  const auto params = reloaded->named_parameters();
  ASSERT_EQ(params.size(), trained.size());
  bool changed = false;
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].first, trained[i].first);
    EXPECT_EQ(params[i].second->data.to_floats(), trained[i].second.to_floats()) << params[i].first;
    changed |= params[i].second->data.to_floats() != original[i].second->data.to_floats();
  }
  EXPECT_TRUE(changed) << "fine-tuning moved the weights";

  // The exported folder computes what the fine-tuned weights compute.
  auto direct = models::build_causal_lm(model->config());
  const auto direct_params = direct->named_parameters();
  for (size_t i = 0; i < direct_params.size(); ++i) direct_params[i].second->data.copy_from(trained[i].second);
  const Tensor ids = corpus.next_batch(2, 16).inputs;
  EXPECT_EQ(reloaded->forward(ids).to_floats(), direct->forward(ids).to_floats());
  fs::remove_all(out);
}

}  // namespace
}  // namespace zt::engine
