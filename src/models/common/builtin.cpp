#include "zt/models/builtin.hpp"

#include <map>

#include "zt/core/error.hpp"

namespace zt::models {

namespace {

TransformerConfig gpt2(int64_t vocab, int64_t width, int64_t layers, int64_t heads, int64_t positions) {
  TransformerConfig c;
  c.model_type = "gpt2";
  c.vocab_size = vocab;
  c.hidden_size = width;
  c.num_layers = layers;
  c.num_heads = c.num_kv_heads = heads;
  c.intermediate_size = 4 * width;
  c.max_position_embeddings = positions;
  c.tie_word_embeddings = true;
  c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
  return c;
}

TransformerConfig llama(int64_t vocab, int64_t width, int64_t layers, int64_t heads, int64_t kv_heads, int64_t mlp,
                        int64_t positions) {
  TransformerConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = width;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = width / heads;
  c.intermediate_size = mlp;
  c.max_position_embeddings = positions;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

const std::map<std::string, TransformerConfig>& registry() {
  static const std::map<std::string, TransformerConfig> r = {
      {"gpt2-tiny", gpt2(128, 64, 2, 4, 128)},
      {"gpt2-cpu-bench", gpt2(512, 256, 4, 4, 256)},
      {"gpt2", gpt2(50257, 768, 12, 12, 1024)},
      {"gpt2-medium", gpt2(50257, 1024, 24, 16, 1024)},
      {"gpt2-large", gpt2(50257, 1280, 36, 20, 1024)},
      {"llama-tiny", llama(256, 64, 2, 4, 2, 176, 128)},
      {"tinyllama-1.1b", llama(32000, 2048, 22, 32, 4, 5632, 2048)},
      {"llama-7b", llama(32000, 4096, 32, 32, 32, 11008, 4096)},  // Llama-2-7B's shape: offload runs on one GPU
  };
  return r;
}

}  // namespace

TransformerConfig builtin_config(const std::string& name) {
  auto it = registry().find(name);
  if (it != registry().end()) return it->second;
  std::string known;
  for (const auto& n : builtin_names()) known += (known.empty() ? "" : ", ") + n;
  ZT_THROW("unknown built-in model \"", name, "\" (known: ", known, "; or give a Hugging Face model folder)");
}

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  for (const auto& [name, c] : registry()) names.push_back(name);
  return names;
}

bool is_builtin(const std::string& name) { return registry().count(name) > 0; }

}  // namespace zt::models
