// tokenizer.json parsing and the encode/decode pipeline of a byte-level BPE tokenizer.
#include "zt/io/bpe_tokenizer.hpp"

#include <deque>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "io/added_tokens.hpp"
#include "io/bpe_model.hpp"
#include "io/pre_tokenizer.hpp"
#include "io/unicode_normalizer.hpp"
#include "io/utf8.hpp"
#include "zt/core/error.hpp"

namespace zt::io {
using nlohmann::json;

struct BpeTokenizer::Impl {
  std::string origin;
  std::unique_ptr<BpeModel> model;
  PreTokenizer pre_tokenizer;
  bool byte_level_decoder = false;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  AddedTokenMatcher raw_matcher;         // normalized == false: matched on the raw text
  AddedTokenMatcher normalized_matcher;  // normalized == true: matched in what is left
  bool nfc = false;                      // the normalizer: Unicode NFC (Qwen2) or none
};

namespace {

const json& require(const json& j, const char* key, const std::string& where) {
  ZT_CHECK(j.is_object() && j.contains(key), where, ": missing \"", key, "\"");
  return j[key];
}

bool has_type(const json& j, const std::string& type) {
  if (j.is_object()) {
    if (j.contains("type") && j["type"] == type) return true;
    for (const auto& [k, v] : j.items()) {
      if (has_type(v, type)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (has_type(v, type)) return true;
    }
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges, const std::string& where) {
  ZT_CHECK(merges.is_array(), where, ": \"merges\" is a JSON ", merges.type_name(), ", expected an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      // The older form, "a b": tokens of a byte-level vocab never hold a space (it is "Ġ").
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      ZT_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, where, ": merges[", i,
               "] = \"", s, "\" is not two tokens separated by one space");
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      ZT_THROW(where, ": merges[", i, "] = ", m.dump(), " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

AddedToken parse_added_token(const json& j, size_t i, const std::string& where) {
  const std::string here = where + ": added_tokens[" + std::to_string(i) + "]";
  ZT_CHECK(j.is_object(), here, " is not an object");
  const json& id = require(j, "id", here);
  const json& content = require(j, "content", here);
  ZT_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX, here, ": id ",
           id.dump(), " is not a valid token id");
  ZT_CHECK(content.is_string() && !content.get<std::string>().empty(), here, ": content ", content.dump(),
           " is not a non-empty string");
  AddedToken t;
  t.id = id.get<int32_t>();
  t.content = content.get<std::string>();
  const auto flag = [&](const char* key, bool fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    ZT_CHECK(j[key].is_boolean(), here, ": \"", key, "\" is ", j[key].dump(), ", expected true or false");
    return j[key].get<bool>();
  };
  t.special = flag("special", false);
  t.single_word = flag("single_word", false);
  t.lstrip = flag("lstrip", false);
  t.rstrip = flag("rstrip", false);
  t.normalized = flag("normalized", !t.special);
  return t;
}

// The ids a post-processor puts around a single sequence (TemplateProcessing's "single",
// RobertaProcessing's cls/sep); ByteLevel post-processing changes only offsets.
void parse_post_processor(const json& j, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix,
                          const std::string& where) {
  if (!j.is_object() || !j.contains("type")) return;
  const std::string type = j["type"].is_string() ? j["type"].get<std::string>() : "";
  if (type == "Sequence" && j.contains("processors") && j["processors"].is_array()) {
    for (const json& p : j["processors"]) parse_post_processor(p, prefix, suffix, where);
  } else if (type == "TemplateProcessing" && j.contains("single") && j["single"].is_array()) {
    const json specials = j.value("special_tokens", json::object());
    bool after = false;
    for (const json& piece : j["single"]) {
      if (piece.contains("Sequence")) {
        after = true;
      } else if (piece.contains("SpecialToken")) {
        const std::string name = piece["SpecialToken"].value("id", "");
        ZT_CHECK(specials.contains(name) && specials[name].contains("ids") && specials[name]["ids"].is_array(),
                 where, ": post_processor template names special token \"", name, "\" with no ids");
        for (const json& id : specials[name]["ids"]) (after ? suffix : prefix).push_back(id.get<int32_t>());
      }
    }
  } else if ((type == "RobertaProcessing" || type == "BertProcessing") && j.contains("cls") && j.contains("sep")) {
    prefix.push_back(j["cls"][1].get<int32_t>());
    suffix.push_back(j["sep"][1].get<int32_t>());
  }
}

}  // namespace

bool is_byte_level_bpe_json(const std::string& json_text) {
  const json root = json::parse(json_text, nullptr, false);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) return false;
  const json& model = root["model"];
  const bool bpe = model.value("type", std::string(model.contains("merges") ? "BPE" : "")) == "BPE";
  return bpe && (has_type(root.value("pre_tokenizer", json()), "ByteLevel") ||
                 has_type(root.value("decoder", json()), "ByteLevel"));
}

BpeTokenizer::BpeTokenizer() : impl_(std::make_unique<Impl>()) {}
BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZT_CHECK(in.good(), "cannot open tokenizer file '", path, "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return from_json(text, path);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_json(const std::string& json_text, const std::string& origin) {
  // The checks below name what they expect; a value of the wrong JSON type that slips past
  // them still surfaces as a zt::Error naming the file.
  try {
    return parse(json_text, origin);
  } catch (const json::exception& e) {
    ZT_THROW("tokenizer '", origin, "': ", e.what());
  }
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::parse(const std::string& json_text, const std::string& origin) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    ZT_THROW("tokenizer '", origin, "' is not valid JSON: ", e.what());
  }
  ZT_CHECK(root.is_object(), "tokenizer '", origin, "' is a JSON ", root.type_name(), ", expected an object");
  const std::string where = "tokenizer '" + origin + "'";
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer());
  Impl& impl = *tok->impl_;
  impl.origin = origin;

  const json& model = require(root, "model", where);
  ZT_CHECK(model.is_object(), where, ": \"model\" is not an object");
  const std::string type = model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>() : "BPE";
  ZT_CHECK(type == "BPE", where, ": model type \"", type, "\" is not supported (only BPE; a SentencePiece model ",
           "loads from tokenizer.model)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    ZT_CHECK(!model.contains(key) || model[key].is_null() || model[key] == "", where, ": model.", key, " = ",
             model[key].dump(), " is not supported by byte-level BPE");
  }
  const json& vocab_json = require(model, "vocab", where + ": model");
  ZT_CHECK(vocab_json.is_object(), where, ": model.vocab is not an object of token -> id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    ZT_CHECK(it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() < INT32_MAX, where,
             ": model.vocab[\"", it.key(), "\"] = ", it->dump(), " is not a valid id");
    vocab.emplace(it.key(), it->get<int32_t>());
  }
  const auto merges = parse_merges(require(model, "merges", where + ": model"), where + ": model");
  impl.model = std::make_unique<BpeModel>(std::move(vocab), merges, where);
  BpeModel& bpe = *impl.model;
  bpe.ignore_merges = model.value("ignore_merges", false);
  bpe.byte_fallback = model.value("byte_fallback", false);
  bpe.fuse_unk = model.value("fuse_unk", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = bpe.vocab().find(model["unk_token"].get<std::string>());
    ZT_CHECK(it != bpe.vocab().end(), where, ": model.unk_token \"", model["unk_token"].get<std::string>(),
             "\" is not in the vocab");
    bpe.unk_id = it->second;
  }

  if (root.contains("normalizer") && !root["normalizer"].is_null()) {
    // Supported: none, NFC, or a Sequence of those.
    const json& n = root["normalizer"];
    const auto is_nfc = [](const json& x) { return x.is_object() && x.value("type", "") == "NFC"; };
    bool supported = is_nfc(n);
    if (n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      supported = true;
      for (const json& inner : n["normalizers"]) supported = supported && is_nfc(inner);
    }
    ZT_CHECK(supported, where, ": normalizer ", n.dump().substr(0, 200),
             " is not supported (byte-level BPE tokenizers take none or NFC)");
    impl.nfc = is_nfc(n) || (n.contains("normalizers") && !n["normalizers"].empty());
  }

  bool byte_level = false;
  impl.pre_tokenizer = PreTokenizer::from_json(root.value("pre_tokenizer", json()), where, byte_level);
  const json decoder = root.value("decoder", json());
  if (!decoder.is_null()) {
    const std::string dtype = decoder.value("type", "");
    const bool sequence_of_byte_level = dtype == "Sequence" && decoder.contains("decoders") &&
                                        decoder["decoders"].is_array() && decoder["decoders"].size() == 1 &&
                                        decoder["decoders"][0].value("type", "") == "ByteLevel";
    ZT_CHECK(dtype == "ByteLevel" || sequence_of_byte_level, where, ": decoder ", decoder.dump().substr(0, 200),
             " is not supported (expected ByteLevel)");
    impl.byte_level_decoder = true;
  }
  ZT_CHECK(byte_level || impl.byte_level_decoder, where,
           ": neither the pre-tokenizer nor the decoder is ByteLevel; this is not a byte-level BPE tokenizer");

  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& added = root["added_tokens"];
    ZT_CHECK(added.is_array(), where, ": \"added_tokens\" is not an array");
    for (size_t i = 0; i < added.size(); ++i) impl.added.push_back(parse_added_token(added[i], i, where));
  }
  std::vector<AddedToken> raw, normalized;
  for (size_t i = 0; i < impl.added.size(); ++i) {
    const AddedToken& t = impl.added[i];
    impl.added_by_id[t.id] = i;
    impl.added_by_content[t.content] = t.id;
    (t.normalized ? normalized : raw).push_back(t);
    if (t.special) tok->special_tokens_.push_back({t.content, t.id});
  }
  impl.raw_matcher = AddedTokenMatcher(raw);
  impl.normalized_matcher = AddedTokenMatcher(normalized);

  parse_post_processor(root.value("post_processor", json()), tok->prefix_ids_, tok->suffix_ids_, where);
  // Without tokenizer_config.json the end-of-text token is known by name only.
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|im_end|>"}) {
    if (const auto id = tok->token_to_id(name)) {
      tok->eos_id_ = id;
      break;
    }
  }
  if (tok->prefix_ids_.size() == 1) tok->bos_id_ = tok->prefix_ids_.front();
  for (const char* name : {"<|begin_of_text|>", "<s>", "<bos>"}) {
    if (tok->bos_id_) break;
    if (const auto id = tok->token_to_id(name)) tok->bos_id_ = id;
  }
  return tok;
}

void BpeTokenizer::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  const size_t bad = utf8_first_invalid(text);
  ZT_CHECK(bad == text.size(), "cannot tokenize text that is not valid UTF-8: byte ", bad, " (0x", std::hex,
           int(static_cast<unsigned char>(text[bad < text.size() ? bad : 0])), std::dec, ") of ", text.size());
  const Impl& impl = *impl_;
  // Scratch buffers live per thread so that encoding many small documents does not allocate.
  thread_local std::vector<TextSpan> spans, inner;
  thread_local std::vector<Piece> pieces;
  thread_local std::deque<std::string> scratch, scratch_normalized;
  spans.clear();
  scratch_normalized.clear();
  impl.raw_matcher.split(text, spans);
  for (const TextSpan& span : spans) {
    if (span.id >= 0) {
      ids.push_back(span.id);
      continue;
    }
    inner.clear();
    std::string_view normalized_text = span.text;
    if (impl.nfc) {
      scratch_normalized.push_back(nfc_normalize(span.text));
      normalized_text = scratch_normalized.back();
    }
    impl.normalized_matcher.split(normalized_text, inner);
    for (const TextSpan& s : inner) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      scratch.clear();
      impl.pre_tokenizer.split(s.text, pieces, scratch);
      for (Piece p : pieces) impl.model->encode_piece(p, ids);
    }
  }
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::string out, chunk;
  bool first_token = true;
  const auto flush = [&] {
    out += impl.byte_level_decoder ? utf8_lossy(chunk) : chunk;
    chunk.clear();
  };
  for (int32_t id : ids) {
    if (const auto it = impl.added_by_id.find(id); it != impl.added_by_id.end()) {
      const AddedToken& t = impl.added[it->second];
      if (skip_special_tokens && t.special) continue;
      // Added tokens bypass the decoder: their text is copied as written.
      flush();
      out += t.content;
      first_token = false;
    } else if (impl.model->has_id(id)) {
      if (impl.byte_level_decoder) {
        chunk += impl.model->token_bytes(id);
      } else {
        // No decoder: tokenizers joins the token strings with spaces.
        if (!first_token) chunk += ' ';
        chunk += impl.model->token(id);
      }
      first_token = false;
    }
    // An id past the vocab (padding rows of an embedding) decodes to nothing.
  }
  flush();
  return out;
}

int32_t BpeTokenizer::vocab_size() const {
  int32_t max_id = impl_->model->max_id();
  for (const AddedToken& t : impl_->added) max_id = std::max(max_id, t.id);
  return max_id + 1;
}

std::optional<int32_t> BpeTokenizer::token_to_id(const std::string& token) const {
  if (const auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  if (const auto it = impl_->model->vocab().find(token); it != impl_->model->vocab().end()) return it->second;
  return std::nullopt;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  return impl_->model->has_id(id) ? impl_->model->token(id) : std::string();
}

}  // namespace zt::io
