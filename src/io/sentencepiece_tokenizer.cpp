#include "zt/io/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include "zt/core/error.hpp"

namespace zt::io {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = sp_->Load(model_path);
  ZT_CHECK(status.ok(), "cannot load SentencePiece model '", model_path, "': ", status.ToString());
  const auto known = [&](int id) { return id >= 0 && id < sp_->GetPieceSize() ? std::optional<int32_t>(id) : std::nullopt; };
  eos_id_ = known(sp_->eos_id());
  bos_id_ = known(sp_->bos_id());
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    if (sp_->IsControl(id) || sp_->IsUnknown(id)) special_tokens_.push_back({sp_->IdToPiece(id), id});
  }
  // Llama-2's convention (add_bos_token true, add_eos_token false); tokenizer_config.json may
  // say otherwise, which the caller applies.
  if (bos_id_) prefix_ids_ = {*bos_id_};
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

void SentencePieceTokenizer::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<int> out;
  const auto status = sp_->Encode(text, &out);
  ZT_CHECK(status.ok(), "SentencePiece model '", path_, "' cannot encode a text of ", text.size(), " bytes: ",
           status.ToString());
  ids.insert(ids.end(), out.begin(), out.end());
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  // SentencePiece drops control tokens (<s>, </s>) when decoding. Kept, they are written as
  // their piece between separately decoded runs (a run after one starts like a new text).
  std::string out, part;
  std::vector<int> run;
  const auto flush = [&] {
    if (run.empty()) return;
    const auto status = sp_->Decode(run, &part);
    ZT_CHECK(status.ok(), "SentencePiece model '", path_, "' cannot decode: ", status.ToString());
    out += part;
    run.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= sp_->GetPieceSize()) continue;  // padding rows past the vocab
    if (sp_->IsControl(id)) {
      if (skip_special_tokens) continue;
      flush();
      out += sp_->IdToPiece(id);
      continue;
    }
    run.push_back(id);
  }
  flush();
  return out;
}

int32_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::optional<int32_t> SentencePieceTokenizer::token_to_id(const std::string& token) const {
  const int id = sp_->PieceToId(token);
  // PieceToId answers unk for anything unknown; only the unk piece itself maps there.
  if (id == sp_->unk_id() && token != sp_->IdToPiece(id)) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int32_t id) const {
  return id >= 0 && id < sp_->GetPieceSize() ? sp_->IdToPiece(id) : std::string();
}

}  // namespace zt::io
