#include "zt/nn/layers.hpp"

namespace zt::nn {

std::pair<Tensor, Tensor> Norm::forward_after_add(const Tensor& x, const Tensor& residual) {
  ZT_CHECK(residual.shape() == x.shape(), type_name(), ": residual ", residual.describe(), " does not match input ",
           x.describe());
  Tensor out = Module::forward_together({this}, [&] { return normalize(x, residual); });
  return {x, out};
}

Tensor Norm::backward_plus(const Tensor& dy, const Tensor& dsum) {
  ZT_CHECK(dsum.shape() == dy.shape(), type_name(), ": residual gradient ", dsum.describe(), " does not match ",
           dy.describe());
  return Module::backward_together({this}, [&] { return input_gradient(dy, dsum); });
}

LayerNorm::LayerNorm(int64_t dim, double eps, bool with_bias) : eps_(eps) {
  weight = register_parameter("weight", make_parameter({dim}));
  if (with_bias) bias = register_parameter("bias", make_parameter({dim}));
}

void LayerNorm::init_own_parameters(Rng&) {
  weight->data.fill_(1.0);
  if (bias) bias->data.zero_();
}

Tensor LayerNorm::normalize(const Tensor& x, const Tensor& residual) {
  input_ = as_rows(x);
  const int64_t n = input_.size(0);
  Tensor out = Tensor::empty(input_.shape(), x.dtype(), x.device());
  mean_ = Tensor::empty({n}, ops::stats_dtype(x.dtype()), x.device());
  rstd_ = Tensor::empty({n}, ops::stats_dtype(x.dtype()), x.device());
  const Tensor b = bias ? bias->data : Tensor();
  if (residual.defined())
    ops::layernorm_forward_residual(input_, out, mean_, rstd_, input_, as_rows(residual), weight->data, b, eps_);
  else
    ops::layernorm_forward(out, mean_, rstd_, input_, weight->data, b, eps_);
  return out.reshape(x.shape());
}

Tensor LayerNorm::input_gradient(const Tensor& dy, const Tensor& dsum) {
  ZT_CHECK(input_.defined(), "LayerNorm: backward before forward");
  Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
  ops::layernorm_backward(dx, weight->requires_grad ? weight->grad_for_accumulate() : Tensor(),
                          bias && bias->requires_grad ? bias->grad_for_accumulate() : Tensor(), as_rows(dy), input_,
                          weight->data, mean_, rstd_, dsum.defined() ? as_rows(dsum) : Tensor());
  drop_saved();
  return dx.reshape(dy.shape());
}

void LayerNorm::drop_saved() { input_ = mean_ = rstd_ = Tensor(); }

RMSNorm::RMSNorm(int64_t dim, double eps) : eps_(eps) { weight = register_parameter("weight", make_parameter({dim})); }

void RMSNorm::init_own_parameters(Rng&) { weight->data.fill_(1.0); }

Tensor RMSNorm::normalize(const Tensor& x, const Tensor& residual) {
  input_ = as_rows(x);
  Tensor out = Tensor::empty(input_.shape(), x.dtype(), x.device());
  rstd_ = Tensor::empty({input_.size(0)}, ops::stats_dtype(x.dtype()), x.device());
  if (residual.defined())
    ops::rmsnorm_forward_residual(input_, out, rstd_, input_, as_rows(residual), weight->data, eps_);
  else
    ops::rmsnorm_forward(out, rstd_, input_, weight->data, eps_);
  return out.reshape(x.shape());
}

Tensor RMSNorm::input_gradient(const Tensor& dy, const Tensor& dsum) {
  ZT_CHECK(input_.defined(), "RMSNorm: backward before forward");
  Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
  ops::rmsnorm_backward(dx, weight->requires_grad ? weight->grad_for_accumulate() : Tensor(), as_rows(dy), input_,
                        weight->data, rstd_, dsum.defined() ? as_rows(dsum) : Tensor());
  drop_saved();
  return dx.reshape(dy.shape());
}

void RMSNorm::drop_saved() { input_ = rstd_ = Tensor(); }

}  // namespace zt::nn
