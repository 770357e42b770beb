#include "zt/optim/clip.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::optim {

double sum_of_squares(const std::vector<Tensor>& grads) {
  double s = 0;
  for (const Tensor& g : grads)
    if (g.defined()) s += ops::sum_squares(g);
  return s;
}

double clip_coefficient(double global_norm, double max_norm) { return ops::clip_coefficient(global_norm, max_norm); }

}  // namespace zt::optim
