#include "zt/nn/containers.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::nn {

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) add(std::move(m));
}

Sequential& Sequential::add(std::shared_ptr<Module> m, const std::string& name) {
  order_.push_back(m.get());
  register_module(name.empty() ? std::to_string(order_.size() - 1) : name, std::move(m));
  return *this;
}

Tensor Sequential::forward_impl(const Tensor& x) {
  Tensor h = x;
  for (Module* m : order_) h = m->forward(h);
  return h;
}

Tensor Sequential::backward_impl(const Tensor& dy) {
  Tensor g = dy;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) g = (*it)->backward(g);
  return g;
}

Residual::Residual(std::shared_ptr<Module> body, const std::string& name) : body_(body.get()) {
  register_module(name, std::move(body));
}

Tensor Residual::forward_impl(const Tensor& x) {
  Tensor y = body_->forward(x);
  ZT_CHECK(y.shape() == x.shape(), "Residual: body maps ", shape_str(x.shape()), " to ", shape_str(y.shape()),
           "; a residual needs the same shape");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::add(out, x, y);
  return out;
}

Tensor Residual::backward_impl(const Tensor& dy) {
  Tensor dx = body_->backward(dy);
  Tensor out = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
  ops::add(out, dx, dy);
  return out;
}

Tensor ModuleDict::forward_impl(const Tensor&) {
  ZT_THROW("ModuleDict holds modules for its parent to run; it has no forward of its own");
}

Tensor ModuleDict::backward_impl(const Tensor&) {
  ZT_THROW("ModuleDict holds modules for its parent to run; it has no backward of its own");
}

std::shared_ptr<Module> ModuleList::at(size_t i) const {
  ZT_CHECK(i < items_.size(), "ModuleList: item ", i, " of ", items_.size());
  return children()[i].second;
}

void ModuleList::replace(size_t i, std::shared_ptr<Module> m) {
  ZT_CHECK(i < items_.size(), "ModuleList: cannot replace item ", i, " of ", items_.size());
  ZT_CHECK(m != nullptr, "ModuleList: replacement for item ", i, " is null");
  items_[i] = m.get();
  replace_child(std::to_string(i), std::move(m));
}

Tensor ModuleList::forward_impl(const Tensor&) {
  ZT_THROW("ModuleList holds modules for its parent to run; it has no forward of its own");
}

Tensor ModuleList::backward_impl(const Tensor&) {
  ZT_THROW("ModuleList holds modules for its parent to run; it has no backward of its own");
}

}  // namespace zt::nn
