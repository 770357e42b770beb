#include "zt/optim/sgd.hpp"

namespace zt::optim {

Sgd::Sgd(const SgdConfig& config) : config_(config) {
  ZT_CHECK(!config.nesterov || (config.momentum > 0 && config.dampening == 0),
           "SGD: nesterov momentum needs momentum > 0 and dampening 0, got momentum ", config.momentum,
           " and dampening ", config.dampening);
}

void Sgd::step(const std::vector<StepTarget>& targets, double lr, double grad_scale) {
  ++step_count_;
  const SgdConfig& c = config_;
  for (const StepTarget& t : targets) {
    check_host_target(t);
    float* p = t.param.data<float>();
    const int64_t n = t.param.numel();
    if (c.momentum == 0) {
      visit_grad(t, [&](auto grad) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) p[i] = float(p[i] - lr * (double(grad(i)) * grad_scale + c.weight_decay * p[i]));
      });
      finish_target(t);
      continue;
    }
    const bool first = !has_state(t, "momentum_buffer");
    float* b = state_for(t, "momentum_buffer").data<float>();
    visit_grad(t, [&](auto grad) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const double d = double(grad(i)) * grad_scale + c.weight_decay * p[i];
        const double buf = first ? d : c.momentum * b[i] + (1.0 - c.dampening) * d;
        b[i] = float(buf);
        const double step = c.nesterov ? d + c.momentum * double(b[i]) : double(b[i]);
        p[i] = float(p[i] - lr * step);
      }
    });
    finish_target(t);
  }
}

}  // namespace zt::optim
