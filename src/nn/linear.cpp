#include "zt/nn/layers.hpp"

#include <utility>

namespace zt::nn {

Tensor as_rows(const Tensor& x) {
  ZT_CHECK(x.dim() >= 1, "expected a tensor with a feature dimension, got ", x.describe());
  return x.reshape({-1, x.size(-1)});
}

Linear::Linear(const LinearOptions& options, ParameterPtr shared_weight)
    : options_(options), owns_weight_(shared_weight == nullptr) {
  ZT_CHECK(options.in_features > 0 && options.out_features > 0, "Linear: features must be positive, got in ",
           options.in_features, " out ", options.out_features);
  const Shape w = options.layout == ops::WeightLayout::out_in ? Shape{options.out_features, options.in_features}
                                                              : Shape{options.in_features, options.out_features};
  if (shared_weight) {
    ZT_CHECK(shared_weight->shape == w, "Linear: tied weight has shape ", shape_str(shared_weight->shape),
             ", expected ", shape_str(w));
    weight = register_parameter("weight", shared_weight);
  } else {
    weight = register_parameter("weight", make_parameter(w));
  }
  if (options.bias) bias = register_parameter("bias", make_parameter({options.out_features}));
}

void Linear::init_own_parameters(Rng& rng) {
  if (owns_weight_) fill_normal(weight->data, 0.0, options_.init_std, rng);
  if (bias) bias->data.zero_();
}

Tensor Linear::forward_impl(const Tensor& x) {
  ZT_CHECK(x.size(-1) == options_.in_features, "Linear: input ", x.describe(), " has ", x.size(-1),
           " features, expected ", options_.in_features);
  input_ = as_rows(x);
  out_shape_ = x.shape();
  out_shape_.back() = options_.out_features;
  const int64_t n = input_.size(0);
  Tensor out = Tensor::empty({n, options_.out_features}, x.dtype(), x.device());
  pre_act_ = options_.activation == ops::Activation::none ? Tensor()
                                                           : Tensor::empty(out.shape(), x.dtype(), x.device());
  const Tensor residual = std::exchange(residual_, Tensor());
  ZT_CHECK(!residual.defined() || residual.numel() == out.numel(), "Linear: a residual of ", residual.describe(),
           " for an output of ", n, " x ", options_.out_features);
  ops::matmul_forward(out, pre_act_, input_, weight->data, bias ? bias->data : Tensor(), options_.layout,
                      options_.activation, residual.defined() ? as_rows(residual) : Tensor());
  return out.reshape(out_shape_);
}

void Linear::add_to_next_output(const Tensor& residual) { residual_ = residual; }

void Linear::backward_through_activation_of(Linear& producer) {
  ZT_CHECK(producer.options_.activation != ops::Activation::none && producer.options_.out_features == options_.in_features,
           "Linear: backward_through_activation_of needs a producer with an activation and ", options_.in_features,
           " outputs");
  activation_producer_ = &producer;
  producer.dy_is_pre_activation_ = true;
}

Tensor Linear::backward_impl(const Tensor& dy) {
  ZT_CHECK(input_.defined(), "Linear: backward before forward");
  Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
  // dy is already the gradient of the pre-activation when the consumer took the activation's backward.
  const ops::Activation act = dy_is_pre_activation_ ? ops::Activation::none : options_.activation;
  const ops::Activation inp_act = activation_producer_ ? activation_producer_->options_.activation : ops::Activation::none;
  if (activation_producer_)
    ZT_CHECK(activation_producer_->pre_act_.defined(), "Linear: the producer's pre-activation is gone before this backward");
  bool overwrite = false;  // the window's first weight gradient: the product writes it
  const Tensor dweight = weight->requires_grad ? weight->grad_for_write(overwrite) : Tensor();
  ops::matmul_backward(dx, dweight, bias && bias->requires_grad ? bias->grad_for_accumulate() : Tensor(), as_rows(dy),
                       input_, weight->data, act == ops::Activation::none ? Tensor() : pre_act_, options_.layout, act,
                       inp_act, activation_producer_ ? activation_producer_->pre_act_ : Tensor(),
                       overwrite ? ops::GradInto::overwrite : ops::GradInto::add);
  Shape in_shape = out_shape_;
  in_shape.back() = options_.in_features;
  drop_saved();
  activation_producer_ = nullptr;
  dy_is_pre_activation_ = false;
  return dx.reshape(in_shape);
}

void Linear::drop_saved() { input_ = pre_act_ = Tensor(); }

}  // namespace zt::nn
