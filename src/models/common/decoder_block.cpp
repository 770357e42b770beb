#include "zt/models/decoder_block.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::models {

DecoderBlock::DecoderBlock(const DecoderBlockNames& names, std::shared_ptr<nn::Module> norm_1,
                           std::shared_ptr<nn::Attention> attn, std::shared_ptr<nn::Module> norm_2,
                           std::shared_ptr<nn::MLP> mlp)
    : norm_1_(register_module(names.norm_1, std::move(norm_1))),
      norm_2_(nullptr),
      attn_(register_module(names.attn, std::move(attn))),
      mlp_(nullptr) {
  // Registration order is the order of Hugging Face's state dict: norm_1, attn, norm_2, mlp.
  norm_2_ = register_module(names.norm_2, std::move(norm_2));
  mlp_ = register_module(names.mlp, std::move(mlp));
}

Tensor DecoderBlock::forward_impl(const Tensor& x) {
  Tensor h = attn_->forward(norm_1_->forward(x));
  ops::add(h, h, x);
  Tensor y = mlp_->forward(norm_2_->forward(h));
  ops::add(y, y, h);
  return y;
}

Tensor DecoderBlock::backward_impl(const Tensor& dy) {
  // dh = dy + d(mlp(norm_2(h)))/dh ; dx = dh + d(attn(norm_1(x)))/dx
  Tensor dh = norm_2_->backward(mlp_->backward(dy));
  ops::add(dh, dh, dy);
  Tensor dx = norm_1_->backward(attn_->backward(dh));
  ops::add(dx, dx, dh);
  return dx;
}

}  // namespace zt::models
