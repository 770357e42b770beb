// SentencePiece models (tokenizer.model: Llama-2, Mistral, T5, ...) through libsentencepiece,
// so ids match the reference implementation by construction.
#pragma once

#include <memory>
#include <string>

#include "zt/io/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace zt::io {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  void encode_into(std::string_view text, std::vector<int32_t>& ids) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int32_t id) const override;
  std::string kind() const override { return "SentencePiece"; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace zt::io
