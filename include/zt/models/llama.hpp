// Llama (LlamaForCausalLM; Mistral without a sliding window and Qwen2 share it): RoPE,
// RMSNorm, SwiGLU MLP, grouped key/value heads. Shapes: ids (B, T), logits (B, T, V).
#pragma once

#include "zt/models/causal_lm.hpp"
#include "zt/models/decoder_block.hpp"
#include "zt/nn/containers.hpp"
#include "zt/nn/layers.hpp"

namespace zt::models {

class LlamaForCausalLM : public CausalLM {
 public:
  explicit LlamaForCausalLM(const TransformerConfig& config);
  std::string type_name() const override { return "LlamaForCausalLM"; }

 protected:
  Tensor forward_impl(const Tensor& ids) override;
  Tensor backward_impl(const Tensor& dlogits) override;

 private:
  std::shared_ptr<nn::Embedding> embed_tokens_;
  std::shared_ptr<nn::RMSNorm> norm_;
  std::shared_ptr<nn::Linear> lm_head_;
};

}  // namespace zt::models
