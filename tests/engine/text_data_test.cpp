// `zt train --model HF_FOLDER --data TEXT`: the folder's tokenizer turns the text into shards
// (cached beside it) and the model trains on them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "zt/engine/trainer.hpp"
#include "zt/models/builtin.hpp"

namespace zt::engine {
namespace {

namespace fs = std::filesystem;

TEST(TextData, TrainsWithTheModelFoldersTokenizer) {
  const fs::path tokenizer = fs::path(ZT_FIXTURES_DIR) / "hf" / "tok-bpe" / "tokenizer.json";
  if (!fs::exists(tokenizer)) GTEST_SKIP() << "no fixtures";
  const fs::path dir = fs::temp_directory_path() / ("zt_text_data_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "model");
  // A small GPT-2 whose vocabulary covers the tokenizer's 600 ids, saved as a HF folder.
  models::TransformerConfig c = models::builtin_config("gpt2-tiny");
  c.vocab_size = 600;
  auto model = models::build_causal_lm(c);
  model->init_weights(3);
  models::save_pretrained(*model, (dir / "model").string());
  fs::copy_file(tokenizer, dir / "model" / "tokenizer.json");
  {
    std::ofstream text(dir / "corpus.txt");
    for (int i = 0; i < 400; ++i) text << "the quick brown fox jumps over the lazy dog number " << i % 7 << ". ";
  }
  TrainOptions o;
  o.model = (dir / "model").string();
  o.data = (dir / "corpus.txt").string();
  o.steps = 30;
  o.batch_size = 4;
  o.seq_len = 32;
  const TrainResult r = train(o, [](const std::string&) {});
  EXPECT_TRUE(fs::exists(dir / "corpus.txt.zt-shards"));
  EXPECT_LT(r.final_loss, 0.6 * r.steps.front().loss) << "repetitive text is easy to learn";

  o.model = "gpt2-tiny";  // text with no tokenizer to read it
  try {
    fs::remove_all(dir / "corpus.txt.zt-shards");
    train(o, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zt::engine
