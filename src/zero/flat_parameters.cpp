#include "zt/zero/flat_parameters.hpp"

#include <limits>

namespace zt::zero {

FlatParameters::FlatParameters(const nn::Module& module, DType dtype, Device device, int64_t alignment)
    : layout_(module, 1, alignment, std::numeric_limits<int64_t>::max()) {
  data_ = Tensor::zeros({layout_.total()}, dtype, device);
  grad_ = Tensor::zeros({layout_.total()}, dtype, device);
  for (const ParamSlot& s : layout_.slots()) {
    Tensor view = data_.view(size_t(s.offset), s.param->shape);
    if (s.param->data.defined()) {
      ZT_CHECK(s.param->data.dtype() == dtype, "FlatParameters: parameter ", s.name, " is ",
               dtype_name(s.param->data.dtype()), ", the flat buffer ", dtype_name(dtype));
      view.copy_from(s.param->data.to(device));
    }
    s.param->data = view;
    s.param->dtype = dtype;
    s.param->grad = grad_.view(size_t(s.offset), s.param->shape);
  }
}

}  // namespace zt::zero
