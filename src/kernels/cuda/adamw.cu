// AdamW on flat f32 buffers with the CPU reference's arithmetic (PyTorch's): decay, the moments,
// then the bias-corrected update. Four elements per thread where the buffers are 16-byte aligned.
#include <algorithm>
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
__device__ __forceinline__ bool aligned16_device(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

AdamWConstants constants(const ops::AdamWParams& p, double grad_scale) {
  // As the CPU reference: 1 - beta in double, the bias corrections in double.
  const double bias_correction1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, double(p.step));
  return {float(p.beta2),
          float(1.0 - p.beta1),
          float(1.0 - p.beta2),
          float(p.eps),
          float(1.0 - p.lr * p.weight_decay),
          float(p.lr / bias_correction1),
          float(std::sqrt(bias_correction2)),
          float(grad_scale)};
}

constexpr int kManyPerLaunch = 64;

struct AdamWList {  // a kernel parameter: 64 x 40 bytes, inside the 4 KB limit
  AdamWPointers buffers[kManyPerLaunch];
};

// blockIdx.y picks the buffer; the blocks along x stride over it, four at a time where aligned.
__global__ void adamw_many_kernel(AdamWList list, AdamWConstants k) {
  const AdamWPointers b = list.buffers[blockIdx.y];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  int64_t done = 0;
  if (aligned16_device(b.param) && aligned16_device(b.grad) && aligned16_device(b.exp_avg) &&
      aligned16_device(b.exp_avg_sq)) {
    const int64_t n4 = b.n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      float4 p = reinterpret_cast<float4*>(b.param)[i], m = reinterpret_cast<float4*>(b.exp_avg)[i],
             v = reinterpret_cast<float4*>(b.exp_avg_sq)[i];
      const float4 g = reinterpret_cast<const float4*>(b.grad)[i];
      adamw_update(p.x, g.x, m.x, v.x, k);
      adamw_update(p.y, g.y, m.y, v.y, k);
      adamw_update(p.z, g.z, m.z, v.z, k);
      adamw_update(p.w, g.w, m.w, v.w, k);
      reinterpret_cast<float4*>(b.param)[i] = p;
      reinterpret_cast<float4*>(b.exp_avg)[i] = m;
      reinterpret_cast<float4*>(b.exp_avg_sq)[i] = v;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < b.n; i += stride) adamw_update(b.param[i], b.grad[i], b.exp_avg[i], b.exp_avg_sq[i], k);
}

}  // namespace

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale) {
  if (n == 0) return;
  const AdamWConstants k = constants(p, grad_scale);
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

void adamw_step_many(const AdamWPointers* buffers, int64_t count, const ops::AdamWParams& p, double grad_scale) {
  const AdamWConstants k = constants(p, grad_scale);
  for (int64_t start = 0; start < count; start += kManyPerLaunch) {
    const int64_t here = count - start < kManyPerLaunch ? count - start : kManyPerLaunch;
    AdamWList list{};
    int64_t largest = 0;
    for (int64_t i = 0; i < here; ++i) {
      list.buffers[i] = buffers[start + i];
      largest = largest > buffers[start + i].n ? largest : buffers[start + i].n;
    }
    if (largest == 0) continue;
    // Blocks along x for the largest buffer (4 elements a thread); smaller buffers' extra blocks exit.
    const int64_t per_block = 256 * 4;
    const unsigned blocks = unsigned(std::min<int64_t>((largest + per_block - 1) / per_block, 1024));
    adamw_many_kernel<<<dim3(blocks, unsigned(here)), 256, 0, compute_stream()>>>(list, k);
    ZT_CUDA_CHECK_LAUNCH("adamw_many_kernel");
  }
}

}  // namespace zt::cuda
