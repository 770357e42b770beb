#include "zt/nn/layers.hpp"

namespace zt::nn {

LayerNorm::LayerNorm(int64_t dim, double eps, bool with_bias) : eps_(eps) {
  weight = register_parameter("weight", make_parameter({dim}));
  if (with_bias) bias = register_parameter("bias", make_parameter({dim}));
}

void LayerNorm::init_own_parameters(Rng&) {
  weight->data.fill_(1.0);
  if (bias) bias->data.zero_();
}

Tensor LayerNorm::forward_impl(const Tensor& x) {
  input_ = as_rows(x);
  const int64_t n = input_.size(0);
  Tensor out = Tensor::empty(input_.shape(), x.dtype(), x.device());
  mean_ = Tensor::empty({n}, ops::stats_dtype(x.dtype()), x.device());
  rstd_ = Tensor::empty({n}, ops::stats_dtype(x.dtype()), x.device());
  ops::layernorm_forward(out, mean_, rstd_, input_, weight->data, bias ? bias->data : Tensor(), eps_);
  return out.reshape(x.shape());
}

Tensor LayerNorm::backward_impl(const Tensor& dy) {
  ZT_CHECK(input_.defined(), "LayerNorm: backward before forward");
  Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
  ops::layernorm_backward(dx, weight->requires_grad ? weight->grad_for_accumulate() : Tensor(),
                          bias && bias->requires_grad ? bias->grad_for_accumulate() : Tensor(), as_rows(dy), input_,
                          weight->data, mean_, rstd_);
  drop_saved();
  return dx.reshape(dy.shape());
}

void LayerNorm::drop_saved() { input_ = mean_ = rstd_ = Tensor(); }

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) { weight = register_parameter("weight", make_parameter({dim})); }

void RMSNorm::init_own_parameters(Rng&) { weight->data.fill_(1.0); }

Tensor RMSNorm::forward_impl(const Tensor& x) {
  input_ = as_rows(x);
  Tensor out = Tensor::empty(input_.shape(), x.dtype(), x.device());
  rstd_ = Tensor::empty({input_.size(0)}, ops::stats_dtype(x.dtype()), x.device());
  ops::rmsnorm_forward(out, rstd_, input_, weight->data, eps_);
  return out.reshape(x.shape());
}

Tensor RMSNorm::backward_impl(const Tensor& dy) {
  ZT_CHECK(input_.defined(), "RMSNorm: backward before forward");
  Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
  ops::rmsnorm_backward(dx, weight->requires_grad ? weight->grad_for_accumulate() : Tensor(), as_rows(dy), input_,
                        weight->data, rstd_);
  drop_saved();
  return dx.reshape(dy.shape());
}

void RMSNorm::drop_saved() { input_ = rstd_ = Tensor(); }

}  // namespace zt::nn
