#include "zt/models/llama.hpp"

namespace zt::models {

LlamaForCausalLM::LlamaForCausalLM(const TransformerConfig& config) : CausalLM(config) {
  const auto& c = config;
  const double std = c.initializer_range;
  auto model = register_module("model", std::make_shared<nn::ModuleDict>());
  embed_tokens_ = model->add("embed_tokens", std::make_shared<nn::Embedding>(c.vocab_size, c.hidden_size, std));
  auto layers = model->add("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::AttentionOptions attn;
    attn.n_embd = c.hidden_size;
    attn.n_head = c.num_heads;
    attn.n_kv_head = c.num_kv_heads;
    attn.head_dim = c.head_dim;
    attn.qkv_bias = c.attention_bias;
    attn.out_bias = c.attention_out_bias;
    attn.rope_theta = c.rope_theta;
    attn.fused_qkv = false;
    attn.layout = ops::WeightLayout::out_in;
    attn.out_name = "o_proj";
    attn.init_std = attn.out_init_std = std;
    nn::MLPOptions mlp{c.hidden_size, c.intermediate_size, nn::MLPKind::swiglu, c.mlp_bias, ops::WeightLayout::out_in,
                       std, std};
    layers->append(std::make_shared<DecoderBlock>(
        DecoderBlockNames{"input_layernorm", "self_attn", "post_attention_layernorm", "mlp"},
        std::make_shared<nn::RMSNorm>(c.hidden_size, c.norm_eps), std::make_shared<nn::Attention>(attn),
        std::make_shared<nn::RMSNorm>(c.hidden_size, c.norm_eps), std::make_shared<nn::MLP>(mlp)));
  }
  set_blocks(layers);
  norm_ = model->add("norm", std::make_shared<nn::RMSNorm>(c.hidden_size, c.norm_eps));
  nn::LinearOptions head{c.hidden_size, c.vocab_size, false, ops::WeightLayout::out_in, ops::Activation::none, std};
  lm_head_ = register_module("lm_head", std::make_shared<nn::Linear>(
                                            head, c.tie_word_embeddings ? embed_tokens_->weight : nullptr));
}

Tensor LlamaForCausalLM::forward_impl(const Tensor& ids) {
  ZT_CHECK(ids.dim() == 2, "LlamaForCausalLM: ids must be (B, T), got ", ids.describe());
  return lm_head_->forward(norm_->forward(blocks_forward(embed_tokens_->forward(ids))));
}

Tensor LlamaForCausalLM::backward_impl(const Tensor& dlogits) {
  embed_tokens_->backward(blocks_backward(norm_->backward(lm_head_->backward(dlogits))));
  return Tensor();
}

}  // namespace zt::models
