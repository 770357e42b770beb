#include "zt/nn/attention.hpp"

#include <cmath>

namespace zt::nn {

Attention::Attention(const AttentionOptions& o) : options_(o) {
  ZT_CHECK(o.n_embd > 0 && o.n_head > 0, "Attention: n_embd and n_head must be positive");
  if (options_.n_kv_head == 0) options_.n_kv_head = o.n_head;
  if (options_.head_dim == 0) {
    ZT_CHECK(o.n_embd % o.n_head == 0, "Attention: n_embd ", o.n_embd, " is not divisible by n_head ", o.n_head);
    options_.head_dim = o.n_embd / o.n_head;
  }
  const int64_t nh = options_.n_head, nkv = options_.n_kv_head, hd = options_.head_dim;
  ZT_CHECK(nh % nkv == 0, "Attention: n_head ", nh, " is not a multiple of n_kv_head ", nkv);
  auto linear = [&](int64_t in, int64_t out, bool bias, double std) {
    return std::make_shared<Linear>(LinearOptions{in, out, bias, o.layout, ops::Activation::none, std});
  };
  if (o.fused_qkv) {
    c_attn_ = register_module("c_attn", linear(o.n_embd, (nh + 2 * nkv) * hd, o.qkv_bias, o.init_std));
  } else {
    q_proj_ = register_module("q_proj", linear(o.n_embd, nh * hd, o.qkv_bias, o.init_std));
    k_proj_ = register_module("k_proj", linear(o.n_embd, nkv * hd, o.qkv_bias, o.init_std));
    v_proj_ = register_module("v_proj", linear(o.n_embd, nkv * hd, o.qkv_bias, o.init_std));
    qkv_proj_ = std::make_unique<SiblingLinears>(std::vector<std::shared_ptr<Linear>>{q_proj_, k_proj_, v_proj_});
  }
  out_proj_ = register_module(o.out_name, linear(nh * hd, o.n_embd, o.out_bias, o.out_init_std));
  if (o.rope_theta > 0) {
    ZT_CHECK(hd % 2 == 0, "Attention: rotary embedding needs an even head size, got ", hd);
    // As Hugging Face computes it: inv_freq = 1 / theta^(2i / HD) in f32.
    std::vector<float> inv(size_t(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i)
      inv[size_t(i)] = 1.0f / std::pow(float(o.rope_theta), float(2 * i) / float(hd));
    inv_freq_ = Tensor::from_floats({hd / 2}, inv);
  }
}

const Tensor& Attention::frequencies_for(const Tensor& x) {
  const DType dtype = ops::stats_dtype(x.dtype());
  // Made once per device and dtype: a copy to the GPU at every call would wait for it each time.
  if (!inv_freq_here_.defined() || inv_freq_here_.device() != x.device() || inv_freq_here_.dtype() != dtype)
    inv_freq_here_ = inv_freq_.to(dtype).to(x.device());
  return inv_freq_here_;
}

Tensor Attention::project_qkv(const Tensor& x) {
  return c_attn_ ? c_attn_->forward(x) : qkv_proj_->forward(x);
}

Tensor Attention::project_qkv_backward(const Tensor& dqkv) {
  return c_attn_ ? c_attn_->backward(dqkv) : qkv_proj_->backward(dqkv);
}

Tensor Attention::forward_impl(const Tensor& x) {
  ZT_CHECK(x.dim() == 3 && x.size(2) == options_.n_embd, "Attention: input must be (B, T, ", options_.n_embd,
           "), got ", x.describe());
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t nh = options_.n_head, nkv = options_.n_kv_head, hd = options_.head_dim;
  qkv_ = project_qkv(x);
  if (inv_freq_.defined()) {
    ops::rope_forward(qkv_.reshape({b, t, nh + 2 * nkv, hd}), frequencies_for(x), nh + nkv,
                      position_offset_);
  }
  out_ = Tensor::empty({b, t, nh * hd}, x.dtype(), x.device());
  att_ = Tensor::empty(ops::attention_saved_shape(x.device(), b, nh, t), ops::stats_dtype(x.dtype()), x.device());
  ops::attention_forward(out_, att_, qkv_, nh, nkv);
  // out_ shares its storage with the input that out_proj_ keeps for its own backward: no copy.
  return out_proj_->forward(out_);
}

Tensor Attention::backward_impl(const Tensor& dy) {
  ZT_CHECK(qkv_.defined(), "Attention: backward before forward");
  const int64_t nh = options_.n_head, nkv = options_.n_kv_head;
  Tensor dattn = out_proj_->backward(dy);
  Tensor dqkv = Tensor::empty(qkv_.shape(), qkv_.dtype(), qkv_.device());
  // The rotation's inverse comes with the backward (inside its kernels where they take it).
  const ops::RotaryPositions rotary{inv_freq_.defined() ? frequencies_for(dqkv) : inv_freq_, position_offset_};
  ops::attention_backward(dqkv, dattn, qkv_, out_, att_, nh, nkv, inv_freq_.defined() ? &rotary : nullptr);
  qkv_ = out_ = att_ = Tensor();  // the projection's saved input stays for its backward below
  return project_qkv_backward(dqkv);
}

void Attention::drop_saved() {
  qkv_ = out_ = att_ = Tensor();
  if (qkv_proj_) qkv_proj_->drop_saved();
}

}  // namespace zt::nn
