// AdamW on flat f32 buffers with the CPU reference's arithmetic (PyTorch's): decay, the moments,
// then the bias-corrected update. Four elements per thread where the buffers are 16-byte aligned.
// The mixed form reads bf16/f16 gradients and writes the rounded parameters in the same pass.
#include <algorithm>
#include <cmath>

#include <cuda_fp16.h>

#include <type_traits>

#include "common.cuh"

namespace zt::cuda {

namespace {

struct AdamWConstants {
  float beta2, one_minus_beta1, one_minus_beta2, eps, decay, step_size, bias_correction2_sqrt, scale;
  const float* queued_scale;  // optional: multiplies scale, read when the kernel runs
};

// Folds the queued scale into k.scale; false when it is not finite, and the kernel then writes
// nothing (a non-finite gradient norm leaves the parameters and moments as they were).
__device__ __forceinline__ bool take_queued_scale(AdamWConstants& k) {
  if (!k.queued_scale) return true;
  const float s = *k.queued_scale;
  k.scale *= s;
  return isfinite(s);
}

__device__ __forceinline__ void adamw_update(float& param, float grad, float& m, float& v, const AdamWConstants& k) {
  const float g = grad * k.scale;
  m = m + k.one_minus_beta1 * (g - m);
  v = v * k.beta2 + k.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / k.bias_correction2_sqrt + k.eps;
  param = param * k.decay - k.step_size * (m / denom);
}

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             AdamWConstants k) {
  if (!take_queued_scale(k)) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    adamw_update(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
}

__global__ void adamw_vec4_kernel(float4* param, const float4* grad, float4* exp_avg, float4* exp_avg_sq, int64_t n4,
                                  AdamWConstants k) {
  if (!take_queued_scale(k)) return;
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

// The mixed-precision step: the gradient in its storage type G (read as its f32 value, exactly),
// and the updated parameter also written rounded into out (type O; void: none), so that neither
// an f32 copy of the gradients nor a separate cast pass over the parameters is needed.
template <class G, class O>
__global__ void adamw_mixed_kernel(float* param, const G* grad, float* exp_avg, float* exp_avg_sq, O* out, int64_t n,
                                   AdamWConstants k) {
  if (!take_queued_scale(k)) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float p = param[i];
    adamw_update(p, to_float(grad[i]), exp_avg[i], exp_avg_sq[i], k);
    param[i] = p;
    if constexpr (!std::is_void_v<O>) out[i] = from_float<O>(p);
  }
}

// Four elements a thread: f32 buffers 16 bytes, the gradient and the copy 4 x sizeof(G or O) bytes.
template <class G, class O>
__global__ void adamw_mixed_vec4_kernel(float4* param, const G* grad, float4* exp_avg, float4* exp_avg_sq, O* out,
                                        int64_t n4, AdamWConstants k) {
  if (!take_queued_scale(k)) return;
  struct alignas(4 * sizeof(G)) G4 { G v[4]; };
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    float4 p = param[i], m = exp_avg[i], v = exp_avg_sq[i];
    const G4 g = reinterpret_cast<const G4*>(grad)[i];
    adamw_update(p.x, to_float(g.v[0]), m.x, v.x, k);
    adamw_update(p.y, to_float(g.v[1]), m.y, v.y, k);
    adamw_update(p.z, to_float(g.v[2]), m.z, v.z, k);
    adamw_update(p.w, to_float(g.v[3]), m.w, v.w, k);
    param[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if constexpr (!std::is_void_v<O>) {
      struct alignas(4 * sizeof(O)) O4 { O v[4]; };
      O4 o;
      o.v[0] = from_float<O>(p.x), o.v[1] = from_float<O>(p.y), o.v[2] = from_float<O>(p.z), o.v[3] = from_float<O>(p.w);
      reinterpret_cast<O4*>(out)[i] = o;
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
__device__ __forceinline__ bool aligned16_device(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

AdamWConstants constants(const ops::AdamWParams& p, double grad_scale, const float* queued_scale = nullptr) {
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
          float(grad_scale),
          queued_scale};
}

constexpr int kManyPerLaunch = 64;

struct AdamWList {  // a kernel parameter: 64 x 40 bytes, inside the 4 KB limit
  AdamWPointers buffers[kManyPerLaunch];
};

// blockIdx.y picks the buffer; the blocks along x stride over it, four at a time where aligned.
__global__ void adamw_many_kernel(AdamWList list, AdamWConstants k) {
  if (!take_queued_scale(k)) return;
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
                const ops::AdamWParams& p, double grad_scale, const float* queued_scale) {
  if (n == 0) return;
  const AdamWConstants k = constants(p, grad_scale, queued_scale);
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

namespace {

template <class G, class O>
void launch_mixed(float* param, const G* grad, float* exp_avg, float* exp_avg_sq, O* out, int64_t n, AdamWConstants k) {
  const bool vec = aligned16(param) && aligned16(exp_avg) && aligned16(exp_avg_sq) &&
                   reinterpret_cast<uintptr_t>(grad) % (4 * sizeof(G)) == 0 &&
                   (std::is_void_v<O> || reinterpret_cast<uintptr_t>(out) % (4 * sizeof(std::conditional_t<std::is_void_v<O>, char, O>)) == 0);
  int64_t done = 0;
  if (vec && n / 4 > 0) {
    const int64_t n4 = n / 4;
    adamw_mixed_vec4_kernel<G, O><<<grid_size(n4, 256), 256, 0, compute_stream()>>>(
        reinterpret_cast<float4*>(param), grad, reinterpret_cast<float4*>(exp_avg), reinterpret_cast<float4*>(exp_avg_sq),
        out, n4, k);
    ZT_CUDA_CHECK_LAUNCH("adamw_mixed_vec4_kernel");
    done = n4 * 4;
  }
  if (done == n) return;
  O* out_tail = nullptr;
  if constexpr (!std::is_void_v<O>) out_tail = out + done;
  adamw_mixed_kernel<G, O><<<grid_size(n - done, 256), 256, 0, compute_stream()>>>(
      param + done, grad + done, exp_avg + done, exp_avg_sq + done, out_tail, n - done, k);
  ZT_CUDA_CHECK_LAUNCH("adamw_mixed_kernel");
}

template <class G>
void launch_mixed_out(float* param, const G* grad, float* exp_avg, float* exp_avg_sq, void* out, DType out_dtype,
                      int64_t n, AdamWConstants k) {
  if (!out) return launch_mixed<G, void>(param, grad, exp_avg, exp_avg_sq, nullptr, n, k);
  switch (out_dtype) {
    case DType::f32: return launch_mixed(param, grad, exp_avg, exp_avg_sq, static_cast<float*>(out), n, k);
    case DType::bf16: return launch_mixed(param, grad, exp_avg, exp_avg_sq, static_cast<bf16*>(out), n, k);
    case DType::f16: return launch_mixed(param, grad, exp_avg, exp_avg_sq, static_cast<__half*>(out), n, k);
    default: ZT_THROW("adamw_step: no CUDA parameter copy in ", dtype_name(out_dtype));
  }
}

}  // namespace

void adamw_step_mixed(float* param, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq, int64_t n,
                      const ops::AdamWParams& p, double grad_scale, void* param_out, DType out_dtype,
                      const float* queued_scale) {
  if (n == 0) return;
  const AdamWConstants k = constants(p, grad_scale, queued_scale);
  switch (grad_dtype) {
    case DType::f32:
      return launch_mixed_out(param, static_cast<const float*>(grad), exp_avg, exp_avg_sq, param_out, out_dtype, n, k);
    case DType::bf16:
      return launch_mixed_out(param, static_cast<const bf16*>(grad), exp_avg, exp_avg_sq, param_out, out_dtype, n, k);
    case DType::f16:
      return launch_mixed_out(param, static_cast<const __half*>(grad), exp_avg, exp_avg_sq, param_out, out_dtype, n, k);
    default: ZT_THROW("adamw_step: no CUDA step for ", dtype_name(grad_dtype), " gradients");
  }
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
