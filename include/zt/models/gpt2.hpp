// GPT-2 (GPT2LMHeadModel): learned positions, LayerNorm, GELU MLP, Conv1D weights stored
// (in, out), lm_head tied to transformer.wte. Shapes: ids (B, T), logits (B, T, V).
#pragma once

#include "zt/models/causal_lm.hpp"
#include "zt/models/decoder_block.hpp"
#include "zt/nn/containers.hpp"
#include "zt/nn/layers.hpp"

namespace zt::models {

class GPT2LMHeadModel : public CausalLM {
 public:
  explicit GPT2LMHeadModel(const TransformerConfig& config);
  std::string type_name() const override { return "GPT2LMHeadModel"; }

 protected:
  Tensor forward_impl(const Tensor& ids) override;
  Tensor backward_impl(const Tensor& dlogits) override;

 private:
  std::shared_ptr<nn::Embedding> wte_, wpe_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
  std::shared_ptr<nn::Linear> lm_head_;
  // On a GPU, the position ids (B, T) of the last forward's shape: made and copied up once per
  // shape, not at every forward.
  Tensor positions_;
};

}  // namespace zt::models
