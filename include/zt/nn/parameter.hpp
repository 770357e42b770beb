// A trainable tensor. Its data (and grad) are views that the owner of the memory chooses:
// standalone tensors at first, views into the ZeRO layer's flat buffers once an engine owns
// them; under stage 3 data is undefined between uses (the coordinator gathers it).
#pragma once

#include <memory>
#include <string>

#include "zt/core/tensor.hpp"

namespace zt::nn {

struct Parameter {
  Shape shape;            // declared shape: holds even while data is released
  DType dtype = DType::f32;
  Tensor data;            // the values the forward reads
  Tensor grad;            // accumulated gradient (same shape); undefined until first needed
  bool requires_grad = true;
  // Uses in the current forward whose backward has not run yet. A weight used twice (GPT-2's
  // tied embedding and head) has its gradient ready only when both backwards have run.
  int pending_backward = 0;
  // grad's memory holds no value of this accumulation window yet: set by the ZeRO layer in place
  // of clearing the buffer, so that the first backward to make the gradient writes it (an op that
  // can overwrite) or clears it first, and later ones add to it.
  bool grad_unwritten = false;

  int64_t numel() const { return shape_numel(shape); }
  // The gradient to accumulate into: allocated as zeros on data's device the first time, cleared
  // first where it is unwritten.
  const Tensor& grad_for_accumulate();
  // The gradient for an op that either adds to it or overwrites it: overwrite is set where it was
  // unwritten (it counts as written from now on).
  const Tensor& grad_for_write(bool& overwrite);
  // The gradient's tensor (allocated as zeros the first time), whatever it holds: grad_unwritten
  // is left as it is.
  const Tensor& grad_storage();
};

using ParameterPtr = std::shared_ptr<Parameter>;

// A new parameter with freshly allocated host data (uninitialized).
ParameterPtr make_parameter(const Shape& shape, DType dtype = DType::f32);

}  // namespace zt::nn
