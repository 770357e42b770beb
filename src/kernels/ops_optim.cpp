#include <cmath>

#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWParams& p, double grad_scale, const Tensor& param_out, const Tensor& queued_scale) {
  ZT_OP_SCOPE("adamw_step", param);
  const char* op = "adamw_step";
  check_dtype(param, DType::f32, op, "param");
  for (const auto& [t, name] : {std::pair{&exp_avg, "exp_avg"}, {&exp_avg_sq, "exp_avg_sq"}})
    kernels::check_matches(*t, param, param.shape(), op, name);
  ZT_CHECK(p.step >= 1, op, ": step must be >= 1 (it is counted from 1), got ", p.step);
  const bool host = param.device().is_cpu();
  if (grad.defined() && grad.dtype() != DType::f32) {
    ZT_CHECK(grad.dtype() == DType::bf16 || grad.dtype() == DType::f16, op, ": grad must be f32, bf16 or f16, got ",
             grad.describe());
    ZT_CHECK(grad.device() == param.device() && grad.numel() == param.numel(), op, ": grad ", grad.describe(),
             " does not match param ", param.describe());
  } else {
    kernels::check_matches(grad, param, param.shape(), op, "grad");
  }
  if (param_out.defined()) {
    ZT_CHECK(param_out.device() == param.device(), op, ": param_out ", param_out.describe(), " is not on param's device (",
             param.describe(), ")");
    ZT_CHECK(param_out.numel() == param.numel() &&
                 (param_out.dtype() == DType::f32 || param_out.dtype() == DType::bf16 || param_out.dtype() == DType::f16),
             op, ": param_out must be f32, bf16 or f16 of param's length ", param.numel(), ", got ", param_out.describe());
  }
  if (queued_scale.defined())
    ZT_CHECK(queued_scale.dtype() == DType::f32 && queued_scale.numel() == 1 && queued_scale.device() == param.device(),
             op, ": queued_scale must be one f32 on param's device (", param.device().name(), "), got ",
             queued_scale.describe());
#if ZT_HAS_CUDA
  if (param.device().is_cuda()) {
    cuda::set_device(param.device().index);
    const float* scale = queued_scale.defined() ? queued_scale.data<float>() : nullptr;
    if (grad.dtype() == DType::f32 && !param_out.defined()) {
      cuda::adamw_step(param.data<float>(), grad.data<float>(), exp_avg.data<float>(), exp_avg_sq.data<float>(),
                       param.numel(), p, grad_scale, scale);
    } else {
      cuda::adamw_step_mixed(param.data<float>(), grad.raw(), grad.dtype(), exp_avg.data<float>(),
                             exp_avg_sq.data<float>(), param.numel(), p, grad_scale,
                             param_out.defined() ? param_out.raw() : nullptr,
                             param_out.defined() ? param_out.dtype() : DType::f32, scale);
    }
    return;
  }
#endif
  ZT_CHECK(host, op, ": no kernel for ", param.device().name(), " tensors in this build");
  if (queued_scale.defined()) {
    // On the host the scale is read now, in f32 as the kernels read it.
    const float s = queued_scale.data<float>()[0];
    if (!std::isfinite(s)) return;
    grad_scale = double(float(grad_scale) * s);
  }
  cpu::adamw_step(param.data<float>(), grad.raw(), grad.dtype(), exp_avg.data<float>(), exp_avg_sq.data<float>(),
                  param.numel(), p, grad_scale, param_out.defined() ? param_out.raw() : nullptr,
                  param_out.defined() ? param_out.dtype() : DType::bf16);
}

void adamw_step_many(const std::vector<AdamWBuffers>& buffers, const AdamWParams& p, double grad_scale) {
  ZT_OP_SCOPE_ON("adamw_step_many", !buffers.empty() && buffers.front().param.device().is_cuda());
  const char* op = "adamw_step_many";
  if (buffers.empty()) return;
  const Device device = buffers.front().param.device();
  for (const AdamWBuffers& b : buffers) {
    check_dtype(b.param, DType::f32, op, "param");
    ZT_CHECK(b.param.device() == device, op, ": buffers on different devices (", device.name(), " and ",
             b.param.device().name(), ")");
    for (const auto& [t, name] : {std::pair{&b.grad, "grad"}, {&b.exp_avg, "exp_avg"}, {&b.exp_avg_sq, "exp_avg_sq"}})
      kernels::check_matches(*t, b.param, b.param.shape(), op, name);
  }
  ZT_CHECK(p.step >= 1, op, ": step must be >= 1 (it is counted from 1), got ", p.step);
#if ZT_HAS_CUDA
  if (device.is_cuda()) {
    std::vector<cuda::AdamWPointers> pointers;
    for (const AdamWBuffers& b : buffers)
      pointers.push_back({b.param.data<float>(), b.grad.data<float>(), b.exp_avg.data<float>(),
                          b.exp_avg_sq.data<float>(), b.param.numel()});
    cuda::set_device(device.index);
    cuda::adamw_step_many(pointers.data(), int64_t(pointers.size()), p, grad_scale);
    return;
  }
#endif
  for (const AdamWBuffers& b : buffers) adamw_step(b.param, b.grad, b.exp_avg, b.exp_avg_sq, p, grad_scale);
}

}  // namespace zt::ops
