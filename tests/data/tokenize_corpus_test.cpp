#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "../io/io_test_util.hpp"
#include "zt/data/token_shard.hpp"
#include "zt/data/tokenize_corpus.hpp"

namespace zt::data {
namespace {

using io::test::expect_error;
using io::test::read_bytes;
using io::test::TempDir;
using io::test::write_bytes;

const std::string kBpe = std::string(ZT_FIXTURES_DIR) + "/hf/tok-bpe";

std::vector<int32_t> read_shards(const std::vector<std::string>& shards) {
  std::vector<int32_t> all;
  for (const std::string& s : shards) {
    TokenShardReader r(s);
    const auto ids = r.read(0, r.size());
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return all;
}

struct Corpus {
  TempDir dir;
  std::vector<std::string> docs;  // in the order they must come out
  Corpus() {
    std::filesystem::create_directories(dir.path() / "in" / "sub");
    std::filesystem::create_directories(dir.path() / "in" / ".hidden");
    write_bytes(dir.file("in/b.txt"), "def f(x):\n    return x**2  # comment\n");
    write_bytes(dir.file("in/a.txt"), "Hello world\n\nnaïve café, 東京 and emoji 🚀🔥");
    write_bytes(dir.file("in/.hidden/skip.txt"), "never read");
    std::string jsonl;
    for (int i = 0; i < 300; ++i) {
      const std::string text = "document " + std::to_string(i) + " says \"hi\"\nand more " + std::string(size_t(i % 7), 'z');
      jsonl += nlohmann::json({{"id", i}, {"text", text}}).dump() + (i % 50 == 0 ? "\r\n\n" : "\n");
    }
    write_bytes(dir.file("in/sub/c.jsonl"), jsonl);
    docs.push_back("Hello world\n\nnaïve café, 東京 and emoji 🚀🔥");
    docs.push_back("def f(x):\n    return x**2  # comment\n");
    for (int i = 0; i < 300; ++i) {
      docs.push_back("document " + std::to_string(i) + " says \"hi\"\nand more " + std::string(size_t(i % 7), 'z'));
    }
  }
};

TEST(TokenizeCorpus, ShardsHoldEveryDocumentInOrderWithEos) {
  Corpus corpus;
  const auto tok = io::load_tokenizer(kBpe);
  std::vector<int32_t> expected;
  for (const std::string& d : corpus.docs) {
    tok->encode_into(d, expected);
    expected.push_back(0);
  }
  std::string first_bytes;
  for (int threads : {1, 3}) {
    SCOPED_TRACE(threads);
    TokenizeCorpusOptions opt;
    opt.inputs = {corpus.dir.file("in")};
    opt.out_dir = corpus.dir.file("out");
    opt.shard_tokens = 1000;
    opt.threads = threads;
    int calls = 0;
    const auto result = tokenize_corpus(*tok, opt, [&](const TokenizeProgress&) { ++calls; });
    EXPECT_GT(calls, 0);
    EXPECT_EQ(result.documents, corpus.docs.size());
    EXPECT_EQ(result.tokens, expected.size());
    EXPECT_EQ(result.shards.size(), (expected.size() + 999) / 1000);
    EXPECT_EQ(read_shards(result.shards), expected);
    TokenShardReader first(result.shards.front());
    EXPECT_EQ(first.size(), 1000u);
    EXPECT_EQ(first.token_bytes(), 2u);
    EXPECT_EQ(first.eos_id(), 0);
    EXPECT_EQ(first.vocab_size(), 600u);
    uint64_t documents = 0;
    for (const auto& s : result.shards) documents += TokenShardReader(s).document_count();
    EXPECT_EQ(documents, corpus.docs.size());
    const auto manifest = nlohmann::json::parse(read_bytes(result.manifest));
    EXPECT_EQ(manifest["tokens"], expected.size());
    EXPECT_EQ(manifest["shards"].size(), result.shards.size());
    // The same bytes for any thread count.
    if (threads == 1) {
      first_bytes = read_bytes(result.shards.back());
    } else {
      EXPECT_TRUE(read_bytes(result.shards.back()) == first_bytes);
    }
  }
}

TEST(TokenizeCorpus, FewerShardsRemoveStaleOnes) {
  Corpus corpus;
  const auto tok = io::load_tokenizer(kBpe);
  TokenizeCorpusOptions opt;
  opt.inputs = {corpus.dir.file("in")};
  opt.out_dir = corpus.dir.file("out");
  opt.shard_tokens = 500;
  const auto many = tokenize_corpus(*tok, opt);
  const auto tokens = read_shards(many.shards);
  opt.shard_tokens = 1'000'000;
  const auto one = tokenize_corpus(*tok, opt);
  ASSERT_EQ(one.shards.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(many.shards.back()));
  EXPECT_EQ(read_shards(one.shards), tokens);
}

TEST(TokenizeCorpus, BadJsonlLinesNameFileAndLine) {
  TempDir dir;
  const auto tok = io::load_tokenizer(kBpe);
  TokenizeCorpusOptions opt;
  opt.out_dir = dir.file("out");
  write_bytes(dir.file("bad.jsonl"), "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  opt.inputs = {dir.file("bad.jsonl")};
  expect_error([&] { tokenize_corpus(*tok, opt); }, "bad.jsonl", "line 2", "not valid JSON");
  write_bytes(dir.file("bad.jsonl"), "{\"content\": \"ok\"}\n");
  expect_error([&] { tokenize_corpus(*tok, opt); }, "line 1", "no string field \"text\"", "content");
  opt.jsonl_field = "content";
  EXPECT_EQ(tokenize_corpus(*tok, opt).documents, 1u);
  opt.inputs = {dir.file("missing")};
  expect_error([&] { tokenize_corpus(*tok, opt); }, "does not exist");
}

TEST(TokenizeCorpus, InvalidUtf8IsRepaired) {
  TempDir dir;
  const auto tok = io::load_tokenizer(kBpe);
  write_bytes(dir.file("x.txt"), "ab\xff" "cd");
  TokenizeCorpusOptions opt;
  opt.inputs = {dir.file("x.txt")};
  opt.out_dir = dir.file("out");
  opt.append_eos = false;
  const auto result = tokenize_corpus(*tok, opt);
  EXPECT_EQ(result.repaired_documents, 1u);
  EXPECT_EQ(read_shards(result.shards), tok->encode("ab\xef\xbf\xbd" "cd"));
}

}  // namespace
}  // namespace zt::data
