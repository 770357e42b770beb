#include "zt/optim/lion.hpp"

namespace zt::optim {

void Lion::step(const std::vector<StepTarget>& targets, double lr, double grad_scale) {
  ++step_count_;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double decay = 1.0 - lr * config_.weight_decay;
  for (const StepTarget& t : targets) {
    check_host_target(t);
    float* p = t.param.data<float>();
    float* m = state_for(t, "exp_avg").data<float>();
    const int64_t n = t.param.numel();
    visit_grad(t, [&](auto grad) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const double gi = double(grad(i)) * grad_scale;
        const double c = b1 * m[i] + (1.0 - b1) * gi;
        const double sign = c > 0 ? 1.0 : (c < 0 ? -1.0 : 0.0);
        p[i] = float(p[i] * decay - lr * sign);
        m[i] = float(b2 * m[i] + (1.0 - b2) * gi);
      }
    });
    finish_target(t);
  }
}

}  // namespace zt::optim
