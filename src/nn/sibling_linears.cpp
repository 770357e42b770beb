#include "zt/nn/sibling_linears.hpp"

#include <algorithm>

namespace zt::nn {

Tensor concatenated_rows(const std::vector<Tensor>& parts) {
  if (parts.empty()) return Tensor();
  const Tensor& first = parts.front();
  if (!first.defined() || first.dim() != 2) return Tensor();
  int64_t rows = 0;
  size_t next = first.offset();
  for (const Tensor& t : parts) {
    if (!t.defined() || t.dim() != 2 || t.storage() != first.storage() || t.dtype() != first.dtype() ||
        t.size(1) != first.size(1) || t.offset() != next)
      return Tensor();
    rows += t.size(0);
    next += size_t(t.numel());
  }
  return Tensor(first.storage(), first.offset(), {rows, first.size(1)}, first.dtype());
}

namespace {

std::vector<Module*> as_modules(const std::vector<std::shared_ptr<Linear>>& members, bool reversed) {
  std::vector<Module*> out;
  for (const auto& m : members) out.push_back(m.get());
  if (reversed) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

SiblingLinears::SiblingLinears(std::vector<std::shared_ptr<Linear>> members) : members_(std::move(members)) {
  ZT_CHECK(!members_.empty(), "SiblingLinears: no members");
  in_features_ = members_.front()->options().in_features;
  for (const auto& m : members_) {
    const LinearOptions& o = m->options();
    ZT_CHECK(o.in_features == in_features_, "SiblingLinears: members read ", in_features_, " and ", o.in_features,
             " features; siblings read the same input");
    ZT_CHECK(o.activation == ops::Activation::none && o.layout == ops::WeightLayout::out_in,
             "SiblingLinears: members must have no activation and the out_in weight layout");
    out_features_ += o.out_features;
  }
}

Tensor SiblingLinears::forward(const Tensor& x) {
  ZT_CHECK(x.size(-1) == in_features_, "SiblingLinears: input ", x.describe(), " has ", x.size(-1),
           " features, expected ", in_features_);
  return Module::forward_together(as_modules(members_, false), [&] {
    input_ = as_rows(x);
    out_shape_ = x.shape();
    out_shape_.back() = out_features_;
    const int64_t n = input_.size(0);
    Tensor out = Tensor::empty({n, out_features_}, x.dtype(), x.device());
    std::vector<Tensor> weights;
    bool any_bias = false;
    for (const auto& m : members_) weights.push_back(m->weight->data), any_bias = any_bias || m->bias != nullptr;
    const Tensor weight = any_bias ? Tensor() : concatenated_rows(weights);
    forward_fused_ = weight.defined();
    if (forward_fused_) {
      ops::matmul_forward(out, Tensor(), input_, weight, Tensor(), ops::WeightLayout::out_in, ops::Activation::none);
    } else {
      std::vector<Tensor> parts;
      for (const auto& m : members_) {
        parts.push_back(Tensor::empty({n, m->options().out_features}, x.dtype(), x.device()));
        ops::matmul_forward(parts.back(), Tensor(), input_, m->weight->data, m->bias ? m->bias->data : Tensor(),
                            ops::WeightLayout::out_in, ops::Activation::none);
      }
      ops::pack_columns(out, parts);
    }
    return out.reshape(out_shape_);
  });
}

Tensor SiblingLinears::backward(const Tensor& dy) {
  ZT_CHECK(input_.defined(), "SiblingLinears: backward before forward");
  ZT_CHECK(dy.size(-1) == out_features_, "SiblingLinears: gradient ", dy.describe(), " has ", dy.size(-1),
           " features, expected ", out_features_);
  // The members in the reverse order of the forward, as separate backwards would run.
  return Module::backward_together(as_modules(members_, true), [&] {
    const Tensor dout = as_rows(dy);
    const int64_t n = input_.size(0);
    Tensor dx = Tensor::empty(input_.shape(), input_.dtype(), input_.device());
    const bool wants_grad = members_.front()->weight->requires_grad;
    std::vector<Tensor> weights, grads;
    bool uniform = true, unwritten = true;
    for (const auto& m : members_) {
      weights.push_back(m->weight->data);
      uniform = uniform && m->bias == nullptr && m->weight->requires_grad == wants_grad;
      if (m->weight->requires_grad) grads.push_back(m->weight->grad_storage());
      unwritten = unwritten && m->weight->grad_unwritten;
    }
    const Tensor weight = uniform ? concatenated_rows(weights) : Tensor();
    const Tensor grad = uniform && wants_grad ? concatenated_rows(grads) : Tensor();
    backward_fused_ = weight.defined() && (grad.defined() || !wants_grad);
    if (backward_fused_) {
      // One product writes all the members' gradients where none holds one yet, else adds to them.
      for (const auto& m : members_) {
        if (!m->weight->requires_grad) continue;
        if (unwritten) m->weight->grad_unwritten = false;  // the product below writes it
        else m->weight->grad_for_accumulate();              // cleared where unwritten: the product adds
      }
      ops::matmul_backward(dx, grad, Tensor(), dout, input_, weight, Tensor(), ops::WeightLayout::out_in,
                           ops::Activation::none, ops::Activation::none, Tensor(),
                           unwritten && grad.defined() ? ops::GradInto::overwrite : ops::GradInto::add);
    } else {
      std::vector<Tensor> parts;
      for (const auto& m : members_) parts.push_back(Tensor::empty({n, m->options().out_features}, dy.dtype(), dy.device()));
      ops::unpack_columns(parts, dout);
      for (size_t k = members_.size(); k-- > 0;) {
        const Linear& m = *members_[k];
        const Tensor target = k + 1 == members_.size() ? dx : Tensor::empty(dx.shape(), dx.dtype(), dx.device());
        bool overwrite = false;
        const Tensor dweight = m.weight->requires_grad ? m.weight->grad_for_write(overwrite) : Tensor();
        ops::matmul_backward(target, dweight, m.bias && m.bias->requires_grad ? m.bias->grad_for_accumulate() : Tensor(),
                             parts[k], input_, m.weight->data, Tensor(), ops::WeightLayout::out_in,
                             ops::Activation::none, ops::Activation::none, Tensor(),
                             overwrite ? ops::GradInto::overwrite : ops::GradInto::add);
        if (k + 1 != members_.size()) ops::add_(dx, target);
      }
    }
    Shape in_shape = out_shape_;
    in_shape.back() = in_features_;
    input_ = Tensor();
    return dx.reshape(in_shape);
  });
}

void SiblingLinears::drop_saved() { input_ = Tensor(); }

}  // namespace zt::nn
