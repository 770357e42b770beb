#include "zt/models/config.hpp"

#include <fstream>

#include "zt/core/error.hpp"

namespace zt::models {

using nlohmann::json;

namespace {

// Reads j[key] as T, or fallback when absent or null; a wrong type names the key.
template <class T>
T get_or(const json& j, const char* key, const T& fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    ZT_THROW(source, ": key \"", key, "\" has value ", it->dump(), " of the wrong type");
  }
}

template <class T>
T require(const json& j, const char* key, const std::string& source) {
  ZT_CHECK(j.contains(key) && !j[key].is_null(), source, ": required key \"", key, "\" is missing");
  return get_or<T>(j, key, T{}, source);
}

TransformerConfig parse_gpt2(const json& j, const std::string& source) {
  TransformerConfig c;
  c.model_type = "gpt2";
  c.vocab_size = require<int64_t>(j, "vocab_size", source);
  c.hidden_size = require<int64_t>(j, "n_embd", source);
  c.num_layers = require<int64_t>(j, "n_layer", source);
  c.num_heads = require<int64_t>(j, "n_head", source);
  c.num_kv_heads = c.num_heads;
  c.max_position_embeddings = require<int64_t>(j, "n_positions", source);
  c.intermediate_size = get_or<int64_t>(j, "n_inner", 4 * c.hidden_size, source);
  c.norm_eps = get_or<double>(j, "layer_norm_epsilon", 1e-5, source);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", true, source);
  c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
  c.initializer_range = get_or<double>(j, "initializer_range", 0.02, source);
  const auto act = get_or<std::string>(j, "activation_function", "gelu_new", source);
  ZT_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh", source, ": activation_function \"", act,
           "\" is not supported (the tanh GELU: \"gelu_new\" or \"gelu_pytorch_tanh\")");
  ZT_CHECK(get_or<bool>(j, "scale_attn_weights", true, source), source,
           ": scale_attn_weights = false is not supported");
  ZT_CHECK(!get_or<bool>(j, "scale_attn_by_inverse_layer_idx", false, source), source,
           ": scale_attn_by_inverse_layer_idx = true is not supported");
  ZT_CHECK(!get_or<bool>(j, "add_cross_attention", false, source), source,
           ": add_cross_attention = true is not supported");
  return c;
}

TransformerConfig parse_llama_family(const json& j, const std::string& type, const std::string& source) {
  TransformerConfig c;
  c.model_type = type;
  c.vocab_size = require<int64_t>(j, "vocab_size", source);
  c.hidden_size = require<int64_t>(j, "hidden_size", source);
  c.num_layers = require<int64_t>(j, "num_hidden_layers", source);
  c.num_heads = require<int64_t>(j, "num_attention_heads", source);
  c.num_kv_heads = get_or<int64_t>(j, "num_key_value_heads", c.num_heads, source);
  c.head_dim = get_or<int64_t>(j, "head_dim", c.num_heads ? c.hidden_size / c.num_heads : 0, source);
  c.intermediate_size = require<int64_t>(j, "intermediate_size", source);
  c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 2048, source);
  c.norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6, source);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, source);
  c.initializer_range = get_or<double>(j, "initializer_range", 0.02, source);
  // Qwen2 always has q/k/v biases; llama and mistral say so with attention_bias.
  c.attention_bias = type == "qwen2" ? true : get_or<bool>(j, "attention_bias", false, source);
  c.attention_out_bias = type == "qwen2" ? false : c.attention_bias;
  c.mlp_bias = get_or<bool>(j, "mlp_bias", false, source);
  const auto act = get_or<std::string>(j, "hidden_act", "silu", source);
  ZT_CHECK(act == "silu", source, ": hidden_act \"", act, "\" is not supported (expected \"silu\")");

  // RoPE: transformers 5 writes rope_parameters {rope_theta, rope_type}; older files rope_theta
  // and rope_scaling. Only the unscaled ("default") form is supported.
  c.rope_theta = get_or<double>(j, "rope_theta", 10000.0, source);
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const json& rope = j[key];
    ZT_CHECK(rope.is_object(), source, ": \"", key, "\" must be an object, got ", rope.dump());
    const auto rope_type = get_or<std::string>(rope, "rope_type", get_or<std::string>(rope, "type", "default", source), source);
    ZT_CHECK(rope_type == "default", source, ": ", key, ".rope_type \"", rope_type,
             "\" is not supported (only \"default\" rotary embeddings)");
    c.rope_theta = get_or<double>(rope, "rope_theta", c.rope_theta, source);
  }
  if (type == "mistral" || type == "qwen2") {
    const auto window = get_or<int64_t>(j, "sliding_window", 0, source);
    const bool use_window = get_or<bool>(j, "use_sliding_window", type == "mistral", source);
    ZT_CHECK(!use_window || window == 0 || window >= c.max_position_embeddings, source, ": sliding_window ", window,
             " shorter than max_position_embeddings ", c.max_position_embeddings, " is not supported");
  }
  return c;
}

}  // namespace

int64_t TransformerConfig::parameter_count() const {
  const int64_t c = hidden_size, hd = head_dim ? head_dim : hidden_size / num_heads;
  int64_t per_layer = 0;
  if (is_gpt2()) {
    per_layer = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * intermediate_size + intermediate_size) +
                (intermediate_size * c + c);
  } else {
    const int64_t q = num_heads * hd, kv = num_kv_heads * hd;
    per_layer = 2 * c + c * (q + 2 * kv) + q * c + 3 * c * intermediate_size;
    if (attention_bias) per_layer += q + 2 * kv;
    if (attention_out_bias) per_layer += c;
    if (mlp_bias) per_layer += 2 * intermediate_size + c;
  }
  int64_t total = vocab_size * c + num_layers * per_layer + (is_gpt2() ? 2 * c : c);
  if (is_gpt2()) total += max_position_embeddings * c;
  if (!tie_word_embeddings) total += vocab_size * c;
  return total;
}

void TransformerConfig::validate(const std::string& source) const {
  auto positive = [&](int64_t v, const char* name) {
    ZT_CHECK(v > 0, source, ": ", name, " must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden size");
  positive(num_layers, "number of layers");
  positive(num_heads, "number of attention heads");
  positive(num_kv_heads, "number of key/value heads");
  positive(intermediate_size, "intermediate size");
  positive(max_position_embeddings, "max_position_embeddings");
  ZT_CHECK(num_heads % num_kv_heads == 0, source, ": num_attention_heads ", num_heads,
           " is not a multiple of num_key_value_heads ", num_kv_heads);
  if (is_gpt2()) {
    ZT_CHECK(hidden_size % num_heads == 0, source, ": n_embd ", hidden_size, " is not divisible by n_head ", num_heads);
  } else {
    positive(head_dim, "head_dim");
    ZT_CHECK(head_dim % 2 == 0, source, ": head_dim ", head_dim, " must be even for rotary embeddings");
  }
  ZT_CHECK(norm_eps > 0, source, ": the norm epsilon must be positive, got ", norm_eps);
}

TransformerConfig TransformerConfig::from_json(const json& j, const std::string& source) {
  ZT_CHECK(j.is_object(), source, ": expected a JSON object");
  const auto type = get_or<std::string>(j, "model_type", "", source);
  TransformerConfig c;
  if (type == "gpt2") c = parse_gpt2(j, source);
  else if (type == "llama" || type == "mistral" || type == "qwen2") c = parse_llama_family(j, type, source);
  else if (type.empty()) ZT_THROW(source, ": no \"model_type\" key; expected one of gpt2, llama, mistral, qwen2");
  else ZT_THROW(source, ": model_type \"", type, "\" is not supported (expected one of gpt2, llama, mistral, qwen2)");
  c.validate(source);
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  std::ifstream in(path);
  ZT_CHECK(in.good(), "cannot open model config ", path);
  json j;
  try {
    in >> j;
  } catch (const json::parse_error& e) {
    ZT_THROW(path, ": not valid JSON (", e.what(), ")");
  }
  return from_json(j, path);
}

json TransformerConfig::to_json() const {
  json j;
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["initializer_range"] = initializer_range;
  j["dtype"] = "float32";
  if (is_gpt2()) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["n_embd"] = hidden_size;
    j["n_layer"] = num_layers;
    j["n_head"] = num_heads;
    j["n_positions"] = max_position_embeddings;
    j["n_inner"] = intermediate_size;
    j["layer_norm_epsilon"] = norm_eps;
    j["activation_function"] = "gelu_new";
    j["resid_pdrop"] = j["embd_pdrop"] = j["attn_pdrop"] = 0.0;
    return j;
  }
  static const std::map<std::string, std::string> arch = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
  j["architectures"] = {arch.at(model_type)};
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["intermediate_size"] = intermediate_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_parameters"] = {{"rope_theta", rope_theta}, {"rope_type", "default"}};
  j["hidden_act"] = "silu";
  if (model_type != "qwen2") j["attention_bias"] = attention_bias;
  j["mlp_bias"] = mlp_bias;
  if (model_type != "llama") j["sliding_window"] = nullptr;
  return j;
}

}  // namespace zt::models
