// Global-norm gradient clipping, split so that sharded gradients can sum their squares across
// ranks between the two halves.
#pragma once

#include <vector>

#include "zt/core/tensor.hpp"

namespace zt::optim {

double sum_of_squares(const std::vector<Tensor>& grads);
// PyTorch's clip_grad_norm_ coefficient: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0
// (ops::clip_coefficient, which the queued clip factor also follows).
double clip_coefficient(double global_norm, double max_norm);

}  // namespace zt::optim
