// Linear layers that read the same input, their outputs packed side by side: row n of the output
// holds member 0's outputs, then member 1's, and so on (Llama's q/k/v and gate/up projections).
//
// When the members' weights lie back to back in one storage, as ZeRO's flat buffers place
// parameters registered one after another (stages 0-2), the forward is one product with the
// concatenated weight (sum of OC, C); the backward is one product too when their gradients lie
// back to back as well. Otherwise each member runs its own product, and the outputs are packed
// (the gradients unpacked). Either way every member's hooks run as if it had run its own forward
// and backward (Module::forward_together), so engines see no difference; the members keep their
// names and parameters. Members have no activation and the out_in layout; a member with a bias
// always takes the per-member path.
#pragma once

#include <memory>
#include <vector>

#include "zt/nn/layers.hpp"

namespace zt::nn {

class SiblingLinears {
 public:
  explicit SiblingLinears(std::vector<std::shared_ptr<Linear>> members);

  Tensor forward(const Tensor& x);    // x (..., C) -> (..., sum of OC)
  Tensor backward(const Tensor& dy);  // dy (..., sum of OC) -> dx (..., C)
  void drop_saved();                  // the input kept for the backward

  int64_t out_features() const { return out_features_; }
  // Whether the last forward / backward ran as one product.
  bool last_forward_fused() const { return forward_fused_; }
  bool last_backward_fused() const { return backward_fused_; }

 private:
  std::vector<std::shared_ptr<Linear>> members_;
  int64_t in_features_ = 0, out_features_ = 0;
  Tensor input_;  // (N, C)
  Shape out_shape_;
  bool forward_fused_ = false, backward_fused_ = false;
};

// The tensors as one (sum of rows, columns) view when they are back to back in one storage, each
// (rows_i, columns) of one dtype; undefined otherwise.
Tensor concatenated_rows(const std::vector<Tensor>& parts);

}  // namespace zt::nn
