// Choosing and loading a model folder's tokenizer.
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "zt/core/error.hpp"
#include "zt/io/bpe_tokenizer.hpp"
#include "zt/io/sentencepiece_tokenizer.hpp"
#include "zt/io/tokenizer.hpp"

namespace zt::io {
namespace fs = std::filesystem;
namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  ZT_CHECK(in.good(), "cannot open '", path.string(), "'");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// tokenizer_config.json names tokens as a string or as {"content": "..."}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

void apply_config(Tokenizer& tok, const fs::path& config_path) {
  if (!fs::exists(config_path)) return;
  const auto config = nlohmann::json::parse(read_text(config_path), nullptr, false);
  ZT_CHECK(config.is_object(), "'", config_path.string(), "' is not a JSON object");
  if (const auto eos = config_token(config, "eos_token")) {
    const auto id = tok.token_to_id(*eos);
    ZT_CHECK(id.has_value(), "'", config_path.string(), "' names eos_token \"", *eos, "\", which the tokenizer lacks");
    tok.set_eos_id(id);
  }
  if (const auto bos = config_token(config, "bos_token")) {
    const auto id = tok.token_to_id(*bos);
    ZT_CHECK(id.has_value(), "'", config_path.string(), "' names bos_token \"", *bos, "\", which the tokenizer lacks");
    tok.set_bos_id(id);
  }
  const auto flag = [&](const char* key) -> std::optional<bool> {
    if (!config.contains(key) || !config[key].is_boolean()) return std::nullopt;
    return config[key].get<bool>();
  };
  const auto affix = [&](std::optional<int32_t> id, const char* what) {
    ZT_CHECK(id.has_value(), "'", config_path.string(), "' sets ", what, " but the tokenizer names no such token");
    return std::vector<int32_t>{*id};
  };
  if (const auto add = flag("add_bos_token")) {
    tok.set_prefix_ids(*add ? affix(tok.bos_id(), "add_bos_token") : std::vector<int32_t>{});
  }
  if (const auto add = flag("add_eos_token")) {
    tok.set_suffix_ids(*add ? affix(tok.eos_id(), "add_eos_token") : std::vector<int32_t>{});
  }
}

std::unique_ptr<Tokenizer> load_file(const fs::path& path) {
  const std::string name = path.filename().string();
  if (path.extension() == ".json") {
    const std::string text = read_text(path);
    ZT_CHECK(is_byte_level_bpe_json(text), "tokenizer '", path.string(),
             "' is not a byte-level BPE tokenizer.json (a SentencePiece-style one loads from its tokenizer.model)");
    return BpeTokenizer::from_json(text, path.string());
  }
  if (path.extension() == ".model") return std::make_unique<SentencePieceTokenizer>(path.string());
  ZT_THROW("cannot tell the tokenizer kind of '", path.string(),
           "' (expected tokenizer.json, a SentencePiece *.model, or a model folder)");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& folder_or_file) {
  const fs::path p(folder_or_file);
  ZT_CHECK(fs::exists(p), "tokenizer '", folder_or_file, "' does not exist");
  std::unique_ptr<Tokenizer> tok;
  fs::path folder;
  if (fs::is_directory(p)) {
    folder = p;
    const fs::path json_path = p / "tokenizer.json", model_path = p / "tokenizer.model";
    const bool has_json = fs::exists(json_path), has_model = fs::exists(model_path);
    if (has_json && (is_byte_level_bpe_json(read_text(json_path)) || !has_model)) {
      tok = load_file(json_path);
    } else if (has_model) {
      tok = load_file(model_path);
    } else {
      ZT_THROW("folder '", folder_or_file, "' holds neither tokenizer.json nor tokenizer.model");
    }
  } else {
    folder = p.parent_path();
    tok = load_file(p);
  }
  apply_config(*tok, folder / "tokenizer_config.json");
  return tok;
}

}  // namespace zt::io
