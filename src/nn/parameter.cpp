#include "zt/nn/parameter.hpp"

namespace zt::nn {

const Tensor& Parameter::grad_storage() {
  if (!grad.defined()) {
    ZT_CHECK(data.defined(), "gradient of a parameter ", shape_str(shape), " whose data is not present");
    grad = Tensor::zeros(shape, dtype, data.device());
    grad_unwritten = false;
  }
  return grad;
}

const Tensor& Parameter::grad_for_accumulate() {
  grad_storage();
  if (grad_unwritten) grad.zero_();
  grad_unwritten = false;
  return grad;
}

const Tensor& Parameter::grad_for_write(bool& overwrite) {
  grad_storage();
  overwrite = grad_unwritten;
  grad_unwritten = false;
  return grad;
}

ParameterPtr make_parameter(const Shape& shape, DType dtype) {
  auto p = std::make_shared<Parameter>();
  p->shape = shape;
  p->dtype = dtype;
  p->data = Tensor::empty(shape, dtype);
  return p;
}

}  // namespace zt::nn
