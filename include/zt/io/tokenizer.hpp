// Tokenizers: text to token ids and back, as Hugging Face's tokenizers and SentencePiece
// compute them (ids must match exactly, or a pretrained model sees garbage).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zt::io {

struct SpecialToken {
  std::string content;
  int32_t id = -1;
};

// All methods are const and safe to call from many threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of text, without the special tokens a post-processor would add (BOS etc.).
  // text must be valid UTF-8 (zt::Error names the offset of the first bad byte).
  std::vector<int32_t> encode(std::string_view text) const {
    std::vector<int32_t> ids;
    encode_into(text, ids);
    return ids;
  }
  // Appends the ids of text to ids (no allocation per call once ids has grown).
  virtual void encode_into(std::string_view text, std::vector<int32_t>& ids) const = 0;
  // The text of ids; special tokens are kept (as transformers' decode does by default) unless
  // skip_special_tokens. Bytes that do not form valid UTF-8 become U+FFFD.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const = 0;

  // One past the largest id (the model's embedding rows must be at least this many).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // "" for an unused id

  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  // The ids that encoding "with special tokens" puts before and after a single text
  // (Llama-3: {<|begin_of_text|>}, {}; GPT-2: {}, {}).
  const std::vector<int32_t>& prefix_ids() const { return prefix_ids_; }
  const std::vector<int32_t>& suffix_ids() const { return suffix_ids_; }
  const std::vector<SpecialToken>& special_tokens() const { return special_tokens_; }
  virtual std::string kind() const = 0;  // "byte-level BPE", "SentencePiece"

  // Overrides from tokenizer_config.json (its eos_token / bos_token name a token).
  void set_eos_id(std::optional<int32_t> id) { eos_id_ = id; }
  void set_bos_id(std::optional<int32_t> id) { bos_id_ = id; }
  // Overrides from tokenizer_config.json's add_bos_token / add_eos_token.
  void set_prefix_ids(std::vector<int32_t> ids) { prefix_ids_ = std::move(ids); }
  void set_suffix_ids(std::vector<int32_t> ids) { suffix_ids_ = std::move(ids); }

 protected:
  std::optional<int32_t> eos_id_, bos_id_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  std::vector<SpecialToken> special_tokens_;
};

// Loads the tokenizer of a model folder or a file:
//   tokenizer.json (byte-level BPE) when present and byte-level, else tokenizer.model
//   (SentencePiece). A folder's tokenizer_config.json, when present, names eos and bos and
//   says whether encoding with special tokens adds them (add_bos_token, add_eos_token).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& folder_or_file);

}  // namespace zt::io
