// AdamW on flat f32 buffers with the CPU reference's arithmetic (PyTorch's): decay, the moments,
// then the bias-corrected update. Four elements per thread where the buffers are 16-byte aligned.
#include <cmath>

#include "common.cuh"

namespace zt::cuda {

namespace {

struct AdamWConstants {
  float beta2, one_minus_beta1, one_minus_beta2, eps, decay, step_size, bias_correction2_sqrt, scale;
};

__device__ __forceinline__ void adamw_update(float& param, float grad, float& m, float& v, const AdamWConstants& k) {
  const float g = grad * k.scale;
  m = m + k.one_minus_beta1 * (g - m);
  v = v * k.beta2 + k.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / k.bias_correction2_sqrt + k.eps;
  param = param * k.decay - k.step_size * (m / denom);
}

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             AdamWConstants k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    adamw_update(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
}

__global__ void adamw_vec4_kernel(float4* param, const float4* grad, float4* exp_avg, float4* exp_avg_sq, int64_t n4,
                                  AdamWConstants k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 p = param[i], m = exp_avg[i], v = exp_avg_sq[i];
    const float4 g = grad[i];
    adamw_update(p.x, g.x, m.x, v.x, k);
    adamw_update(p.y, g.y, m.y, v.y, k);
    adamw_update(p.z, g.z, m.z, v.z, k);
    adamw_update(p.w, g.w, m.w, v.w, k);
    param[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale) {
  if (n == 0) return;
  // As the CPU reference: 1 - beta in double, the bias corrections in double.
  const double bias_correction1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, double(p.step));
  const AdamWConstants k{float(p.beta2),          float(1.0 - p.beta1),
                         float(1.0 - p.beta2),    float(p.eps),
                         float(1.0 - p.lr * p.weight_decay), float(p.lr / bias_correction1),
                         float(std::sqrt(bias_correction2)), float(grad_scale)};
  if (aligned16(param) && aligned16(grad) && aligned16(exp_avg) && aligned16(exp_avg_sq)) {
    const int64_t n4 = n / 4;
    if (n4) {
      adamw_vec4_kernel<<<grid_size(n4, 256), 256, 0, compute_stream()>>>(
          reinterpret_cast<float4*>(param), reinterpret_cast<const float4*>(grad), reinterpret_cast<float4*>(exp_avg),
          reinterpret_cast<float4*>(exp_avg_sq), n4, k);
      ZT_CUDA_CHECK_LAUNCH("adamw_vec4_kernel");
    }
    const int64_t done = n4 * 4;
    if (done == n) return;
    param += done, grad += done, exp_avg += done, exp_avg_sq += done, n -= done;
  }
  adamw_kernel<<<grid_size(n, 256), 256, 0, compute_stream()>>>(param, grad, exp_avg, exp_avg_sq, n, k);
  ZT_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace zt::cuda
