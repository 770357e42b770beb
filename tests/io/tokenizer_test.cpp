#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/pre_tokenizer.hpp"
#include "io_test_util.hpp"
#include "zt/io/bpe_tokenizer.hpp"
#include "zt/io/sentencepiece_tokenizer.hpp"
#include "zt/io/tokenizer.hpp"

namespace zt::io {
namespace {

using nlohmann::json;
using test::expect_error;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;

const std::string kBpe = std::string(ZT_FIXTURES_DIR) + "/hf/tok-bpe";
const std::string kSp = std::string(ZT_FIXTURES_DIR) + "/hf/tok-sp";

struct Case {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded;
};

std::vector<Case> load_cases(const std::string& folder) {
  const json j = json::parse(read_bytes(folder + "/cases.json"));
  std::vector<Case> cases;
  for (const json& c : j) cases.push_back({c["text"], c["ids"].get<std::vector<int32_t>>(), c["decoded"]});
  return cases;
}

void expect_cases(const Tokenizer& tok, const std::vector<Case>& cases) {
  ASSERT_FALSE(cases.empty());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(tok.encode(c.text), c.ids);
    EXPECT_EQ(tok.decode(c.ids), c.decoded);
  }
}

TEST(BpeTokenizer, MatchesFixtureCases) {
  const auto tok = load_tokenizer(kBpe);
  EXPECT_EQ(tok->kind(), "byte-level BPE");
  EXPECT_EQ(tok->vocab_size(), 600);
  EXPECT_EQ(tok->eos_id(), 0);
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->id_to_token(0), "<|endoftext|>");
  EXPECT_EQ(tok->token_to_id("Ġr"), 596);
  EXPECT_FALSE(tok->token_to_id("no such token").has_value());
  ASSERT_EQ(tok->special_tokens().size(), 1u);
  expect_cases(*tok, load_cases(kBpe));
}

TEST(BpeTokenizer, SpecialTokensAreSplitOutFirst) {
  const auto tok = load_tokenizer(kBpe + "/tokenizer.json");
  std::vector<int32_t> expected = tok->encode("Hello");
  expected.push_back(0);
  const auto world = tok->encode(" world");
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(tok->encode("Hello<|endoftext|> world"), expected);
  EXPECT_EQ(tok->decode(expected), "Hello<|endoftext|> world");
  EXPECT_EQ(tok->decode(expected, /*skip_special_tokens=*/true), "Hello world");
  EXPECT_EQ(tok->encode("<|endoftext|><|endoftext|>"), (std::vector<int32_t>{0, 0}));
}

TEST(BpeTokenizer, DecodeOfPartialCharacterIsReplacementCharacter) {
  const auto tok = load_tokenizer(kBpe);
  const auto ids = tok->encode("東");
  ASSERT_GE(ids.size(), 2u);
  // The first byte alone is not valid UTF-8.
  EXPECT_EQ(tok->decode(std::vector<int32_t>{ids[0]}), "\xef\xbf\xbd");
  EXPECT_EQ(tok->decode(ids), "東");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{100000, -1}), "");  // ids past the vocab decode to nothing
}

TEST(BpeTokenizer, RejectsInvalidUtf8Text) {
  const auto tok = load_tokenizer(kBpe);
  expect_error([&] { tok->encode("ok \xff bad"); }, "not valid UTF-8", "byte 3");
}

json fixture_json() { return json::parse(read_bytes(kBpe + "/tokenizer.json")); }

std::unique_ptr<BpeTokenizer> from(const json& j) { return BpeTokenizer::from_json(j.dump(), "variant.json"); }

// Qwen2's tokenizer.json normalizes to NFC: a decomposed "e" + combining acute encodes as the
// precomposed "é"; without the normalizer they differ. Other normalizers are refused by name.
TEST(BpeTokenizer, NfcNormalizerComposesCharacters) {
  json j = fixture_json();
  const std::string decomposed = "cafe\u0301 nai\u0308ve", composed = "caf\u00e9 na\u00efve";
  const auto plain = from(j);
  EXPECT_NE(plain->encode(decomposed), plain->encode(composed));
  j["normalizer"] = {{"type", "NFC"}};
  const auto nfc = from(j);
  EXPECT_EQ(nfc->encode(decomposed), nfc->encode(composed));
  EXPECT_EQ(nfc->encode(composed), plain->encode(composed));
  EXPECT_EQ(nfc->encode("<|endoftext|>e\u0301"), nfc->encode("<|endoftext|>\u00e9"));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  EXPECT_EQ(from(j)->encode(decomposed), nfc->encode(composed));
  j["normalizer"] = {{"type", "NFKD"}};
  expect_error([&] { from(j); }, "variant.json", "NFKD");
}

// The forms Llama-3 and Qwen write: a Split with the regex (Isolated), then ByteLevel without
// its own regex; and merges as "a b" strings. The same tokenizer in those forms gives the same ids.
TEST(BpeTokenizer, SplitSequenceAndStringMergesGiveTheSameIds) {
  json j = fixture_json();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  json merges = json::array();
  for (const json& m : j["model"]["merges"]) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  j["model"]["merges"] = merges;
  const auto tok = from(j);
  expect_cases(*tok, load_cases(kBpe));
}

std::vector<std::string> pieces_of(const json& pre_tokenizer, const std::string& text) {
  bool byte_level = false;
  const PreTokenizer pre = PreTokenizer::from_json(pre_tokenizer, "test", byte_level);
  std::vector<Piece> pieces;
  std::deque<std::string> scratch;
  pre.split(text, pieces, scratch);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, Gpt2ByteLevelRegex) {
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(pieces_of(byte_level, "Hello world's  12345!!\n\n x"),
            (Pieces{"Hello", " world", "'s", " ", " 12345", "!!", "\n\n", " x"}));
  const json prefixed = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(pieces_of(prefixed, "Hi there"), (Pieces{" Hi", " there"}));
  EXPECT_EQ(pieces_of(prefixed, " Hi"), (Pieces{" Hi"}));
}

TEST(PreTokenizer, Llama3SplitDigitsInThreesAndCaseInsensitiveContractions) {
  const json llama3 = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  EXPECT_EQ(pieces_of(llama3, "I'M 1234567 (x) héllo\n\n  wörld"),
            (Pieces{"I", "'M", " ", "123", "456", "7", " (", "x", ")", " héllo", "\n\n", " ", " wörld"}));
}

TEST(PreTokenizer, SplitBehaviors) {
  const auto split = [](const char* behavior, bool invert, const std::string& text) {
    const json j = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
    return pieces_of(j, text);
  };
  EXPECT_EQ(split("Removed", false, "ab-cd"), (Pieces{"ab", "cd"}));
  EXPECT_EQ(split("Isolated", false, "ab-cd"), (Pieces{"ab", "-", "cd"}));
  EXPECT_EQ(split("MergedWithPrevious", false, "ab-cd"), (Pieces{"ab-", "cd"}));
  EXPECT_EQ(split("MergedWithNext", false, "ab-cd"), (Pieces{"ab", "-cd"}));
  EXPECT_EQ(split("Contiguous", false, "ab--cd"), (Pieces{"ab", "--", "cd"}));
  EXPECT_EQ(split("Removed", true, "ab-cd"), (Pieces{"-"}));
  EXPECT_EQ(pieces_of({{"type", "Digits"}, {"individual_digits", true}}, "a12"), (Pieces{"a", "1", "2"}));
  EXPECT_EQ(pieces_of({{"type", "Digits"}, {"individual_digits", false}}, "a12"), (Pieces{"a", "12"}));
}

TEST(BpeTokenizer, AddedTokensWithStripAndSingleWord) {
  json j = fixture_json();
  j["added_tokens"].push_back({{"id", 600}, {"content", "<mask>"}, {"single_word", false}, {"lstrip", true},
                               {"rstrip", false}, {"normalized", false}, {"special", true}});
  j["added_tokens"].push_back({{"id", 601}, {"content", "cat"}, {"single_word", true}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", true}, {"special", false}});
  const auto tok = from(j);
  EXPECT_EQ(tok->vocab_size(), 602);
  const auto base = load_tokenizer(kBpe);
  std::vector<int32_t> expected = base->encode("a");
  expected.push_back(600);  // " <mask>": the space goes with the token
  EXPECT_EQ(tok->encode("a   <mask>"), expected);
  expected = base->encode("a ");
  expected.push_back(601);
  EXPECT_EQ(tok->encode("a cat"), expected);
  EXPECT_EQ(tok->encode("concatenate"), base->encode("concatenate"));  // not a single word
  EXPECT_EQ(tok->decode(tok->encode("a cat")), "a cat");
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeVocabWords) {
  json j = fixture_json();
  // Give a multi-byte piece its own token, reachable only without merges.
  const int32_t id = int32_t(j["model"]["vocab"].size());
  j["model"]["vocab"]["Ġzzq"] = id;
  j["model"]["ignore_merges"] = true;
  const auto tok = from(j);
  EXPECT_EQ(tok->encode(" zzq"), (std::vector<int32_t>{id}));
  j["model"]["ignore_merges"] = false;
  EXPECT_NE(from(j)->encode(" zzq"), (std::vector<int32_t>{id}));
}

TEST(BpeTokenizer, EncodesTheSameFromManyThreads) {
  const auto tok = load_tokenizer(kBpe);
  const auto cases = load_cases(kBpe);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep) {
        for (const Case& c : cases) {
          if (tok->encode(c.text) != c.ids) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(BpeTokenizer, MalformedJsonIsAClearError) {
  expect_error([] { BpeTokenizer::from_json("{", "t.json"); }, "t.json", "not valid JSON");
  expect_error([] { BpeTokenizer::from_json("{}", "t.json"); }, "t.json", "missing \"model\"");
  json j = fixture_json();
  j["model"]["merges"].push_back(json::array({"Ġ", "nosuch"}));
  expect_error([&] { from(j); }, "variant.json", "not in the vocab");
  j = fixture_json();
  j["model"]["merges"][0] = "ĠĠ";
  expect_error([&] { from(j); }, "merges[0]", "not two tokens");
  j = fixture_json();
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error([&] { from(j); }, "normalizer", "Lowercase", "not supported");
  j = fixture_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error([&] { from(j); }, "Metaspace", "not supported");
  j = fixture_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error([&] { from(j); }, "(unclosed", "does not compile");
  j = fixture_json();
  j["model"]["vocab"]["Ġr"] = "x";
  expect_error([&] { from(j); }, "model.vocab[\"Ġr\"]");
  j = fixture_json();
  j["model"]["ignore_merges"] = "yes";
  expect_error([&] { from(j); }, "variant.json");
}

TEST(SentencePieceTokenizer, MatchesFixtureCases) {
  const auto tok = load_tokenizer(kSp);
  EXPECT_EQ(tok->kind(), "SentencePiece");
  EXPECT_EQ(tok->vocab_size(), 400);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->token_to_id("</s>"), 2);
  EXPECT_EQ(tok->prefix_ids(), (std::vector<int32_t>{1}));  // BOS, as Llama-2 adds it
  EXPECT_FALSE(tok->token_to_id("no such piece").has_value());
  expect_cases(*tok, load_cases(kSp));
}

TEST(SentencePieceTokenizer, ControlTokensDecode) {
  const auto tok = load_tokenizer(kSp + "/tokenizer.model");
  std::vector<int32_t> ids = tok->encode("Hello");
  ids.push_back(2);
  EXPECT_EQ(tok->decode(ids, true), "Hello");
  EXPECT_EQ(tok->decode(ids), "Hello</s>");
}

TEST(LoadTokenizer, ChoosesByFileAndReadsConfig) {
  TempDir dir;
  expect_error([&] { load_tokenizer(dir.file("missing")); }, "does not exist");
  expect_error([&] { load_tokenizer(dir.path().string()); }, "neither tokenizer.json nor tokenizer.model");
  write_bytes(dir.file("tokenizer.json"), read_bytes(kBpe + "/tokenizer.json"));
  write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": {"content": "<|endoftext|>"}, "bos_token": "<|endoftext|>"})");
  const auto tok = load_tokenizer(dir.path().string());
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_TRUE(tok->prefix_ids().empty());
  write_bytes(dir.file("tokenizer_config.json"), R"({"bos_token": "<|endoftext|>", "add_bos_token": true, "add_eos_token": true})");
  const auto with_affixes = load_tokenizer(dir.path().string());
  EXPECT_EQ(with_affixes->prefix_ids(), (std::vector<int32_t>{0}));
  EXPECT_EQ(with_affixes->suffix_ids(), (std::vector<int32_t>{0}));
  write_bytes(dir.file("tokenizer_config.json"), R"({"eos_token": "<nope>"})");
  expect_error([&] { load_tokenizer(dir.path().string()); }, "eos_token \"<nope>\"");
}

}  // namespace
}  // namespace zt::io
