// One flat buffer for all of a module tree's parameters and one for their gradients, on one
// process (the FlatLayout of a world of one). Each parameter's data and grad become views at
// its offset, so that optimizers and clipping see one contiguous tensor while the model code
// keeps reading its own shapes. The engine does the same, sharded, for any world size.
#pragma once

#include "zt/zero/flat_layout.hpp"

namespace zt::zero {

class FlatParameters {
 public:
  // Copies the current values in (so a loaded or initialized model keeps its weights); each
  // parameter starts at a multiple of `alignment` elements.
  FlatParameters(const nn::Module& module, DType dtype, Device device, int64_t alignment = 16);
  const Tensor& data() const { return data_; }   // (total)
  const Tensor& grad() const { return grad_; }   // (total), zeroed
  const FlatLayout& layout() const { return layout_; }
  int64_t total() const { return layout_.total(); }  // elements including alignment padding
  int64_t parameter_count() const { return layout_.parameter_count(); }

 private:
  FlatLayout layout_;
  Tensor data_, grad_;
};

}  // namespace zt::zero
