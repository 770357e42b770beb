#include "zt/models/decoder_block.hpp"

#include <tuple>

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

// h = x + attn(norm_1(x)), y = h + mlp(norm_2(h)). Norms that take the residual stream fused
// (nn::Norm) form h inside norm_2's pass and add the residual gradients inside their backwards;
// other modules in their places get the separate adds. The MLP's last product adds h itself.
Tensor DecoderBlock::forward_impl(const Tensor& x) {
  Tensor a = attn_->forward(norm_1_->forward(x));
  Tensor h, normed;
  if (auto* norm = dynamic_cast<nn::Norm*>(norm_2_.get())) {
    std::tie(h, normed) = norm->forward_after_add(a, x);
  } else {
    ops::add(a, a, x);
    h = a;
    normed = norm_2_->forward(h);
  }
  mlp_->add_to_next_output(h);
  return mlp_->forward(normed);
}

Tensor DecoderBlock::backward_impl(const Tensor& dy) {
  // dh = dy + d(mlp(norm_2(h)))/dh ; dx = dh + d(attn(norm_1(x)))/dx
  auto through = [](nn::Module* norm, const Tensor& dnormed, const Tensor& dresidual) {
    if (auto* fused = dynamic_cast<nn::Norm*>(norm)) return fused->backward_plus(dnormed, dresidual);
    Tensor d = norm->backward(dnormed);
    ops::add(d, d, dresidual);
    return d;
  };
  const Tensor dh = through(norm_2_.get(), mlp_->backward(dy), dy);
  return through(norm_1_.get(), attn_->backward(dh), dh);
}

}  // namespace zt::models
