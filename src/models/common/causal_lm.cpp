#include "zt/models/causal_lm.hpp"

#include <algorithm>
#include <filesystem>
#include <unordered_set>

#include "zt/io/atomic_file.hpp"
#include "zt/io/safetensors_sharded.hpp"
#include "zt/models/gpt2.hpp"
#include "zt/models/llama.hpp"

namespace zt::models {

namespace fs = std::filesystem;

void CausalLM::init_weights(uint64_t seed) {
  Rng rng(seed);
  init_parameters(rng);
}

void CausalLM::set_blocks(std::shared_ptr<nn::ModuleList> blocks) {
  blocks_ = std::move(blocks);
  bodies_.clear();
  for (size_t i = 0; i < blocks_->size(); ++i) bodies_.push_back(blocks_->at(i));
}

void CausalLM::checkpoint_blocks(int64_t count, const nn::CheckpointOptions& options) {
  ZT_CHECK(count >= 0, type_name(), ": the number of checkpointed blocks must be >= 0, got ", count);
  ZT_CHECK(blocks_ != nullptr, type_name(), " has no decoder blocks to checkpoint");
  checkpointed_ = std::min(count, num_blocks());
  checkpoint_options_ = options;
  for (size_t i = 0; i < bodies_.size(); ++i) {
    if (int64_t(i) < checkpointed_)
      blocks_->replace(i, std::make_shared<nn::Checkpoint>(bodies_[i], options));
    else
      blocks_->replace(i, bodies_[i]);
  }
}

Tensor CausalLM::blocks_forward(Tensor x) {
  for (size_t i = 0; i < blocks_->size(); ++i) x = (*blocks_)[i].forward(x);
  return x;
}

Tensor CausalLM::blocks_backward(Tensor dy) {
  for (size_t i = blocks_->size(); i-- > 0;) dy = (*blocks_)[i].backward(dy);
  return dy;
}

std::shared_ptr<CausalLM> build_causal_lm(const TransformerConfig& config) {
  config.validate("model config");
  if (config.is_gpt2()) return std::make_shared<GPT2LMHeadModel>(config);
  return std::make_shared<LlamaForCausalLM>(config);
}

namespace {
// Hugging Face GPT-2 checkpoints may carry the attention mask as a buffer; it is not a weight.
bool is_known_buffer(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with(".rotary_emb.inv_freq");
}
}  // namespace

void load_weights(CausalLM& model, const std::string& path) {
  io::ShardedSafetensorsReader reader(path);
  std::unordered_set<std::string> used;
  for (const auto& [name, p] : model.named_parameters()) {
    ZT_CHECK(reader.contains(name), path, ": the checkpoint has no tensor \"", name, "\" that ", model.type_name(),
             " needs (is it a checkpoint of another model?)");
    const io::TensorInfo& info = reader.info(name);
    ZT_CHECK(info.shape == p->shape, reader.shard_of(name), ": tensor \"", name, "\" has shape ", shape_str(info.shape), ", but ",
             model.type_name(), " with this config.json expects ", shape_str(p->shape));
    const Tensor value = reader.read_as(name, p->dtype);
    p->data.copy_from(value.to(p->data.device()));
    used.insert(name);
  }
  for (const std::string& name : reader.names()) {
    if (used.count(name) || is_known_buffer(name)) continue;
    // A separate lm_head in a checkpoint whose config ties it would silently be dropped.
    ZT_THROW(reader.shard_of(name), ": tensor \"", name, "\" matches no parameter of ", model.type_name(),
             " (does config.json describe this checkpoint?)");
  }
}

std::shared_ptr<CausalLM> load_pretrained(const std::string& folder) {
  ZT_CHECK(fs::is_directory(folder), "model folder ", folder, " does not exist or is not a folder");
  const fs::path config_path = fs::path(folder) / "config.json";
  ZT_CHECK(fs::exists(config_path), folder, ": no config.json (expected a Hugging Face model folder)");
  auto model = build_causal_lm(TransformerConfig::from_file(config_path.string()));
  load_weights(*model, folder);
  return model;
}

void save_pretrained(const TransformerConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                     const std::string& folder, uint64_t max_shard_bytes) {
  config.validate("save_pretrained");
  fs::create_directories(folder);
  std::vector<std::pair<std::string, Tensor>> host;
  for (const auto& [name, t] : tensors) host.emplace_back(name, t.to(Device::cpu()));
  io::save_safetensors_sharded(folder, host, max_shard_bytes);
  const std::string text = config.to_json().dump(2) + "\n";
  io::AtomicFile file((fs::path(folder) / "config.json").string());
  file.append(text.data(), text.size());
  file.commit();
}

void save_pretrained(const CausalLM& model, const std::string& folder, uint64_t max_shard_bytes) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, p] : model.named_parameters()) {
    ZT_CHECK(p->data.defined(), "save_pretrained: parameter ", name,
             " is not materialized (under ZeRO stage 3 export from the engine or a checkpoint)");
    tensors.emplace_back(name, p->data);
  }
  save_pretrained(model.config(), tensors, folder, max_shard_bytes);
}

Tensor shift_labels(const Tensor& labels) {
  ZT_CHECK(labels.dim() == 2, "shift_labels: labels must be (B, T), got ", labels.describe());
  const Tensor host = labels.to(Device::cpu());
  check_dtype(host, DType::i32, "shift_labels", "labels");
  const int64_t b = host.size(0), t = host.size(1);
  Tensor out = Tensor::empty({b, t}, DType::i32);
  const int32_t* src = host.data<int32_t>();
  int32_t* dst = out.data<int32_t>();
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j + 1 < t; ++j) dst[i * t + j] = src[i * t + j + 1];
    dst[i * t + t - 1] = -100;
  }
  return out.to(labels.device());
}

}  // namespace zt::models
