// Causal self-attention: MHA or GQA, optional RoPE, with either a fused qkv projection
// (GPT-2's c_attn) or separate q/k/v projections (Llama's q_proj, k_proj, v_proj).
// Shapes: B batch, T sequence, C model width, NH query heads, NKV key/value heads, HD head size.
#pragma once

#include <string>

#include "zt/nn/layers.hpp"
#include "zt/nn/sibling_linears.hpp"

namespace zt::nn {

struct AttentionOptions {
  int64_t n_embd = 0;      // C
  int64_t n_head = 0;      // NH
  int64_t n_kv_head = 0;   // NKV (== NH for MHA)
  int64_t head_dim = 0;    // HD (0: C / NH)
  bool qkv_bias = true;
  bool out_bias = true;
  double rope_theta = 0;   // 0: no rotary embedding
  bool fused_qkv = true;   // one "c_attn" projection (GPT-2) or "q_proj"/"k_proj"/"v_proj" (Llama)
  ops::WeightLayout layout = ops::WeightLayout::out_in;
  std::string out_name = "o_proj";  // "c_proj" for GPT-2
  double init_std = 0.02;
  double out_init_std = 0.02;       // GPT-2 scales the residual projections by 1/sqrt(2 * layers)
};

class Attention : public Module {
 public:
  explicit Attention(const AttentionOptions& options);
  std::string type_name() const override { return "Attention"; }
  const AttentionOptions& options() const { return options_; }
  // Position of the first token (generation with a KV cache moves it; training keeps 0).
  void set_position_offset(int64_t offset) { position_offset_ = offset; }

 protected:
  Tensor forward_impl(const Tensor& x) override;   // x (B, T, C) -> (B, T, C)
  Tensor backward_impl(const Tensor& dy) override;
  void drop_saved() override;

 private:
  Tensor project_qkv(const Tensor& x);             // (B, T, (NH + 2*NKV) * HD)
  Tensor project_qkv_backward(const Tensor& dqkv); // -> dx (B, T, C)
  // The rotary frequencies on x's device, in ops::stats_dtype of x's dtype.
  const Tensor& frequencies_for(const Tensor& x);

  AttentionOptions options_;
  std::shared_ptr<Linear> c_attn_, q_proj_, k_proj_, v_proj_, out_proj_;
  std::unique_ptr<SiblingLinears> qkv_proj_;  // q_proj, k_proj, v_proj as one packed projection
  Tensor inv_freq_;       // (HD / 2), f32 on the host
  Tensor inv_freq_here_;  // inv_freq_ where and as the last call wanted it (frequencies_for)
  int64_t position_offset_ = 0;
  // Saved for the backward: qkv (B, T, (NH + 2*NKV) * HD), the attention output before the
  // projection (B, T, NH*HD), and ops::attention_saved_shape.
  Tensor qkv_, out_, att_;
};

}  // namespace zt::nn
