// One flat buffer for all of a module tree's parameters and one for their gradients. Each
// parameter's data and grad become views at its offset, so that optimizers, clipping and
// collectives see one contiguous tensor while the model code keeps reading its own shapes.
#pragma once

#include <string>
#include <vector>

#include "zt/nn/module.hpp"

namespace zt::zero {

struct FlatEntry {
  std::string name;
  nn::ParameterPtr param;
  int64_t offset = 0;  // in elements, into the flat buffers
  int64_t numel = 0;
};

class FlatParameters {
 public:
  // Copies the current values in (so a loaded or initialized model keeps its weights); each
  // entry starts at a multiple of `alignment` elements.
  FlatParameters(const nn::Module& module, DType dtype, Device device, int64_t alignment = 16);
  const Tensor& data() const { return data_; }   // (total)
  const Tensor& grad() const { return grad_; }   // (total), zeroed
  const std::vector<FlatEntry>& entries() const { return entries_; }
  int64_t total() const { return total_; }       // elements including alignment padding
  int64_t parameter_count() const;               // elements excluding padding

 private:
  std::vector<FlatEntry> entries_;
  int64_t total_ = 0;
  Tensor data_, grad_;
};

}  // namespace zt::zero
