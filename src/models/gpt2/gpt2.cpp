#include "zt/models/gpt2.hpp"

#include <cmath>

#include "zt/kernels/ops.hpp"

namespace zt::models {

GPT2LMHeadModel::GPT2LMHeadModel(const TransformerConfig& config) : CausalLM(config) {
  const auto& c = config;
  const double std = c.initializer_range;
  const double residual_std = std / std::sqrt(2.0 * double(c.num_layers));
  auto transformer = register_module("transformer", std::make_shared<nn::ModuleDict>());
  wte_ = transformer->add("wte", std::make_shared<nn::Embedding>(c.vocab_size, c.hidden_size, std));
  wpe_ = transformer->add("wpe", std::make_shared<nn::Embedding>(c.max_position_embeddings, c.hidden_size, std));
  auto h = transformer->add("h", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::AttentionOptions attn;
    attn.n_embd = c.hidden_size;
    attn.n_head = c.num_heads;
    attn.n_kv_head = c.num_heads;
    attn.fused_qkv = true;
    attn.layout = ops::WeightLayout::in_out;
    attn.out_name = "c_proj";
    attn.init_std = std;
    attn.out_init_std = residual_std;
    nn::MLPOptions mlp{c.hidden_size, c.intermediate_size, nn::MLPKind::gelu, true, ops::WeightLayout::in_out, std,
                       residual_std};
    h->append(std::make_shared<DecoderBlock>(
        DecoderBlockNames{"ln_1", "attn", "ln_2", "mlp"}, std::make_shared<nn::LayerNorm>(c.hidden_size, c.norm_eps),
        std::make_shared<nn::Attention>(attn), std::make_shared<nn::LayerNorm>(c.hidden_size, c.norm_eps),
        std::make_shared<nn::MLP>(mlp)));
  }
  set_blocks(h);
  ln_f_ = transformer->add("ln_f", std::make_shared<nn::LayerNorm>(c.hidden_size, c.norm_eps));
  // The head multiplies by wte (V, C) as (out, in); untied GPT-2 checkpoints carry their own.
  nn::LinearOptions head{c.hidden_size, c.vocab_size, false, ops::WeightLayout::out_in, ops::Activation::none, std};
  lm_head_ = register_module("lm_head", std::make_shared<nn::Linear>(
                                            head, c.tie_word_embeddings ? wte_->weight : nullptr));
}

Tensor GPT2LMHeadModel::forward_impl(const Tensor& ids) {
  ZT_CHECK(ids.dim() == 2, "GPT2LMHeadModel: ids must be (B, T), got ", ids.describe());
  const int64_t b = ids.size(0), t = ids.size(1);
  ZT_CHECK(t <= config().max_position_embeddings, "GPT2LMHeadModel: sequence length ", t,
           " exceeds n_positions ", config().max_position_embeddings);
  Tensor position_ids = positions_;
  if (!position_ids.defined() || position_ids.shape() != ids.shape() || position_ids.device() != ids.device()) {
    std::vector<int32_t> positions(size_t(b * t));
    for (int64_t i = 0; i < b * t; ++i) positions[size_t(i)] = int32_t(i % t);
    position_ids = Tensor::from_ints({b, t}, positions).to(ids.device());
  }
  if (ids.device().is_cuda()) positions_ = position_ids;
  Tensor x = wte_->forward(ids);
  const Tensor pos = wpe_->forward(position_ids);
  ops::add(x, x, pos);
  return lm_head_->forward(ln_f_->forward(blocks_forward(std::move(x))));
}

Tensor GPT2LMHeadModel::backward_impl(const Tensor& dlogits) {
  const Tensor dx = blocks_backward(ln_f_->backward(lm_head_->backward(dlogits)));
  wpe_->backward(dx);
  wte_->backward(dx);
  return Tensor();
}

}  // namespace zt::models
