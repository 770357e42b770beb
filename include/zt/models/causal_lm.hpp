// Causal language models assembled from nn modules, with Hugging Face's parameter names.
// forward(ids (B, T) int32) -> logits (B, T, V); backward(dlogits) runs the model in reverse.
// The model knows nothing about sharding: the engine owns where its parameters live.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "zt/models/config.hpp"
#include "zt/nn/checkpoint.hpp"
#include "zt/nn/containers.hpp"

namespace zt::models {

class CausalLM : public nn::Module {
 public:
  explicit CausalLM(const TransformerConfig& config) : config_(config) {}
  const TransformerConfig& config() const { return config_; }
  // Draws the family's initial weights (normal(0, initializer_range), residual projections
  // scaled by 1/sqrt(2 L), norms at one, biases at zero).
  void init_weights(uint64_t seed);

  // Activation checkpointing of the decoder blocks: the first `count` blocks (all of them when
  // count is at least the number of blocks) each run inside an nn::Checkpoint, the others as
  // before; 0 turns it off. The Checkpoint takes the block's place in the block list, so the
  // parameter names stay Hugging Face's. Call it before an engine is built on the model.
  void checkpoint_blocks(int64_t count, const nn::CheckpointOptions& options = {});
  int64_t checkpointed_blocks() const { return checkpointed_; }
  int64_t num_blocks() const { return int64_t(bodies_.size()); }
  const nn::CheckpointOptions& checkpoint_options() const { return checkpoint_options_; }

 protected:
  // The subclass's decoder blocks, registered under its Hugging Face names ("transformer.h",
  // "model.layers"), and the block loop both families run.
  void set_blocks(std::shared_ptr<nn::ModuleList> blocks);
  Tensor blocks_forward(Tensor x);    // x (B, T, C)
  Tensor blocks_backward(Tensor dy);  // dy (B, T, C)

 private:
  TransformerConfig config_;
  std::shared_ptr<nn::ModuleList> blocks_;
  std::vector<std::shared_ptr<nn::Module>> bodies_;  // the blocks themselves, wrapped or not
  int64_t checkpointed_ = 0;
  nn::CheckpointOptions checkpoint_options_;
};

std::shared_ptr<CausalLM> build_causal_lm(const TransformerConfig& config);

// Names a model folder's weights file(s) will be read from, loads every parameter (converted to
// the parameter's dtype) and checks shapes. Tensors the model does not have are an error,
// except Hugging Face's non-parameter buffers (GPT-2's attn.bias / attn.masked_bias).
void load_weights(CausalLM& model, const std::string& safetensors_path);
// config.json plus model.safetensors (or a sharded index) from a Hugging Face folder.
std::shared_ptr<CausalLM> load_pretrained(const std::string& folder);

// Writes a Hugging Face model folder: config.json and model.safetensors, split into
// model-0000i-of-0000n.safetensors with an index past max_shard_bytes, as save_pretrained does.
// tensors are the parameters under their Hugging Face names (a tied head is left out).
void save_pretrained(const TransformerConfig& config, const std::vector<std::pair<std::string, Tensor>>& tensors,
                     const std::string& folder, uint64_t max_shard_bytes = 5ull << 30);
void save_pretrained(const CausalLM& model, const std::string& folder, uint64_t max_shard_bytes = 5ull << 30);

// Hugging Face's causal-LM shift: targets[b, t] = labels[b, t + 1], and -100 for the last
// position. labels (B, T) int32 -> targets (B, T) int32.
Tensor shift_labels(const Tensor& labels);

}  // namespace zt::models
