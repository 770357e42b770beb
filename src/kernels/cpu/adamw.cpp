// AdamW on flat f32 buffers with PyTorch's arithmetic (torch.optim.AdamW, single-tensor path):
// decay, then the moments, then the bias-corrected update, in that order.
#include <cmath>

#include "cpu_ops.hpp"

namespace zt::cpu {

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale) {
  // 1 - beta in double, as torch computes it from Python floats: 1.0f - 0.999f is 1.3e-5 off.
  const float beta2 = float(p.beta2), one_minus_beta1 = float(1.0 - p.beta1), one_minus_beta2 = float(1.0 - p.beta2);
  const float eps = float(p.eps);
  const float decay = float(1.0 - p.lr * p.weight_decay);
  const double bias_correction1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, double(p.step));
  const float step_size = float(p.lr / bias_correction1);
  const float bias_correction2_sqrt = float(std::sqrt(bias_correction2));
  const float scale = float(grad_scale);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * scale;
    float m = exp_avg[i];
    m = m + one_minus_beta1 * (g - m);  // lerp, as torch
    const float v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = std::sqrt(v) / bias_correction2_sqrt + eps;
    param[i] = param[i] * decay - step_size * (m / denom);
  }
}

}  // namespace zt::cpu
