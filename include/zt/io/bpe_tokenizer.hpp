// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2, Llama-3, Qwen, ...).
//
// Encoding, as tokenizers does it:
//   1. added tokens (special or not) are split out of the text first, leftmost-longest;
//   2. each remaining span is pre-tokenized: ByteLevel (the GPT-2 regex when use_regex) or a
//      Sequence of Split (a regex, a behavior such as Isolated) and ByteLevel(use_regex=false),
//      and Digits; regexes run through PCRE2 in UTF mode with Unicode properties;
//   3. each piece's bytes map to the byte-level alphabet and merge by rank (lowest first,
//      leftmost on ties); with ignore_merges a piece that is itself in the vocab is one id.
// Decoding maps tokens back through the byte decoder; added tokens are copied verbatim.
#pragma once

#include <memory>
#include <string>

#include "zt/io/tokenizer.hpp"

namespace zt::io {

class BpeTokenizer final : public Tokenizer {
 public:
  // Parses tokenizer.json text; origin names it in errors (a path). zt::Error for anything
  // unsupported (a normalizer, a non-byte-level model), naming the key and what was found.
  static std::unique_ptr<BpeTokenizer> from_json(const std::string& json_text, const std::string& origin);
  static std::unique_ptr<BpeTokenizer> from_file(const std::string& path);
  ~BpeTokenizer() override;

  void encode_into(std::string_view text, std::vector<int32_t>& ids) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int32_t id) const override;
  std::string kind() const override { return "byte-level BPE"; }

  struct Impl;

 private:
  BpeTokenizer();
  static std::unique_ptr<BpeTokenizer> parse(const std::string& json_text, const std::string& origin);
  std::unique_ptr<Impl> impl_;
};

// Whether a parsed tokenizer.json is one BpeTokenizer reads (a BPE model with a ByteLevel
// pre-tokenizer or decoder); the factory falls back to tokenizer.model otherwise.
bool is_byte_level_bpe_json(const std::string& json_text);

}  // namespace zt::io
