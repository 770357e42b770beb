#include "zt/optim/clip.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::optim {

double sum_of_squares(const std::vector<Tensor>& grads) {
  double s = 0;
  for (const Tensor& g : grads)
    if (g.defined()) s += ops::sum_squares(g);
  return s;
}

double clip_coefficient(double global_norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double coef = max_norm / (global_norm + 1e-6);
  return coef < 1.0 ? coef : 1.0;
}

}  // namespace zt::optim
