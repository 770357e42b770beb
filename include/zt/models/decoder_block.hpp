// The pre-norm transformer block both families share:
//   h = x + attn(norm_1(x));  y = h + mlp(norm_2(h))
// with the families' own names (GPT-2: ln_1, attn, ln_2, mlp; Llama: input_layernorm,
// self_attn, post_attention_layernorm, mlp). Shapes: x (B, T, C).
#pragma once

#include "zt/nn/attention.hpp"
#include "zt/nn/mlp.hpp"

namespace zt::models {

struct DecoderBlockNames {
  std::string norm_1, attn, norm_2, mlp;
};

class DecoderBlock : public nn::Module {
 public:
  DecoderBlock(const DecoderBlockNames& names, std::shared_ptr<nn::Module> norm_1, std::shared_ptr<nn::Attention> attn,
               std::shared_ptr<nn::Module> norm_2, std::shared_ptr<nn::MLP> mlp);
  std::string type_name() const override { return "DecoderBlock"; }
  nn::Attention& attention() { return *attn_; }

 protected:
  Tensor forward_impl(const Tensor& x) override;
  Tensor backward_impl(const Tensor& dy) override;

 private:
  std::shared_ptr<nn::Module> norm_1_, norm_2_;
  std::shared_ptr<nn::Attention> attn_;
  std::shared_ptr<nn::MLP> mlp_;
};

}  // namespace zt::models
