#include "zt/nn/mlp.hpp"

namespace zt::nn {

MLP::MLP(const MLPOptions& o) : options_(o) {
  ZT_CHECK(o.n_embd > 0 && o.hidden > 0, "MLP: n_embd and hidden must be positive, got ", o.n_embd, " and ", o.hidden);
  auto linear = [&](int64_t in, int64_t out, ops::Activation act, double std) {
    return std::make_shared<Linear>(LinearOptions{in, out, o.bias, o.layout, act, std});
  };
  if (o.kind == MLPKind::gelu) {
    c_fc_ = register_module("c_fc", linear(o.n_embd, o.hidden, ops::Activation::gelu_tanh, o.init_std));
    c_proj_ = register_module("c_proj", linear(o.hidden, o.n_embd, ops::Activation::none, o.out_init_std));
  } else {
    gate_proj_ = register_module("gate_proj", linear(o.n_embd, o.hidden, ops::Activation::none, o.init_std));
    up_proj_ = register_module("up_proj", linear(o.n_embd, o.hidden, ops::Activation::none, o.init_std));
    down_proj_ = register_module("down_proj", linear(o.hidden, o.n_embd, ops::Activation::none, o.out_init_std));
    gate_up_proj_ = std::make_unique<SiblingLinears>(std::vector<std::shared_ptr<Linear>>{gate_proj_, up_proj_});
  }
}

void MLP::add_to_next_output(const Tensor& residual) { (c_proj_ ? c_proj_ : down_proj_)->add_to_next_output(residual); }

Tensor MLP::forward_impl(const Tensor& x) {
  if (c_fc_) return c_proj_->forward(c_fc_->forward(x));
  gate_up_ = gate_up_proj_->forward(x);
  Shape hidden = gate_up_.shape();
  hidden.back() = options_.hidden;
  Tensor h = Tensor::empty(hidden, gate_up_.dtype(), gate_up_.device());
  ops::swiglu_forward(h, gate_up_);
  return down_proj_->forward(h);
}

Tensor MLP::backward_impl(const Tensor& dy) {
  if (c_fc_) {
    // GELU's backward rides on c_proj's input-gradient product (one pass over (N, H) fewer).
    c_proj_->backward_through_activation_of(*c_fc_);
    return c_fc_->backward(c_proj_->backward(dy));
  }
  ZT_CHECK(gate_up_.defined(), "MLP: backward before forward");
  Tensor dh = down_proj_->backward(dy);
  // The gradient replaces the saved (gate, up) values it is computed from, in place.
  Tensor dgate_up = gate_up_;
  ops::swiglu_backward(dgate_up, dh, gate_up_);
  gate_up_ = Tensor();
  return gate_up_proj_->backward(dgate_up);
}

void MLP::drop_saved() {
  gate_up_ = Tensor();
  if (gate_up_proj_) gate_up_proj_->drop_saved();
}

}  // namespace zt::nn
