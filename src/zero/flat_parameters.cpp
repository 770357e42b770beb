#include "zt/zero/flat_parameters.hpp"

namespace zt::zero {

FlatParameters::FlatParameters(const nn::Module& module, DType dtype, Device device, int64_t alignment) {
  ZT_CHECK(alignment > 0, "FlatParameters: alignment must be positive, got ", alignment);
  for (const auto& [name, p] : module.named_parameters()) {
    entries_.push_back({name, p, total_, p->numel()});
    total_ += (p->numel() + alignment - 1) / alignment * alignment;
  }
  data_ = Tensor::zeros({total_}, dtype, device);
  grad_ = Tensor::zeros({total_}, dtype, device);
  for (const FlatEntry& e : entries_) {
    Tensor view = data_.view(size_t(e.offset), e.param->shape);
    if (e.param->data.defined()) {
      ZT_CHECK(e.param->data.dtype() == dtype, "FlatParameters: parameter ", e.name, " is ",
               dtype_name(e.param->data.dtype()), ", the flat buffer ", dtype_name(dtype));
      view.copy_from(e.param->data.to(device));
    }
    e.param->data = view;
    e.param->dtype = dtype;
    e.param->grad = grad_.view(size_t(e.offset), e.param->shape);
  }
}

int64_t FlatParameters::parameter_count() const {
  int64_t n = 0;
  for (const FlatEntry& e : entries_) n += e.numel;
  return n;
}

}  // namespace zt::zero
