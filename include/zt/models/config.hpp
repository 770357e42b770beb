// The architecture of a causal language model, read from (and written as) a Hugging Face
// config.json. One struct covers the families we build: gpt2, llama, mistral, qwen2.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace zt::models {

struct TransformerConfig {
  std::string model_type = "gpt2";   // gpt2 | llama | mistral | qwen2
  int64_t vocab_size = 0;            // V
  int64_t hidden_size = 0;           // C
  int64_t num_layers = 0;            // L
  int64_t num_heads = 0;             // NH
  int64_t num_kv_heads = 0;          // NKV
  int64_t head_dim = 0;              // HD
  int64_t intermediate_size = 0;     // H
  int64_t max_position_embeddings = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;       // llama family only
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // q/k/v projections (qwen2: true)
  bool attention_out_bias = false;   // the output projection
  bool mlp_bias = false;
  double initializer_range = 0.02;

  bool is_gpt2() const { return model_type == "gpt2"; }
  int64_t parameter_count() const;   // from the shapes, counting a tied head once
  void validate(const std::string& source) const;  // a zt::Error naming the source and the field

  // Parses a Hugging Face config.json (source names it in errors).
  static TransformerConfig from_json(const nlohmann::json& j, const std::string& source);
  static TransformerConfig from_file(const std::string& path);
  nlohmann::json to_json() const;    // as Hugging Face writes it, loadable by transformers
};

}  // namespace zt::models
