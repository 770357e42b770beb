#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;

namespace {
void check_targets(const Tensor& targets, int64_t n, int64_t v, const char* op) {
  check_dtype(targets, DType::i32, op, "targets");
  check_shape(targets, {n}, op, "targets");
  if (!targets.device().is_cpu()) return;
  const int32_t* p = targets.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    ZT_CHECK(p[i] == kIgnoreIndex || (p[i] >= 0 && p[i] < v), op, ": target ", p[i], " at row ", i,
             " is neither in [0, ", v, ") nor the ignore index ", kIgnoreIndex);
  }
}

int64_t run(const Tensor& losses, const Tensor& dlogits, const Tensor& logits, const Tensor& targets, double dloss,
            const char* op, bool count_rows, const float* dloss_at = nullptr) {
  ZT_OP_SCOPE("cross_entropy", logits);
  ZT_CHECK(logits.dim() == 2, op, ": logits must be (N, V), got ", logits.describe());
  const int64_t n = logits.size(0), v = logits.size(1);
  kernels::check_stats(losses, logits, {n}, op, "losses");
  if (dlogits.defined()) check_matches(dlogits, logits, {n, v}, op, "dlogits");
  check_targets(targets, n, v, op);
  int64_t counted = 0;
#if ZT_HAS_CUDA
  if (logits.device().is_cuda()) {
    check_same_device(targets, logits, op);
    cuda::dispatch_float(logits, op, [&](auto zero) {
      using T = decltype(zero);
      counted = cuda::cross_entropy<T>(losses.data<float>(), cuda::ptr<T>(dlogits), cuda::ptr<T>(logits),
                                       targets.data<int32_t>(), n, v, dloss, count_rows, dloss_at);
    });
    return counted;
  }
#endif
  ZT_CHECK(dloss_at == nullptr, op, ": a dloss read from device memory needs CUDA logits");
  kernels::dispatch_cpu_float(logits, op, [&](auto zero) {
    using T = decltype(zero);
    counted = cpu::cross_entropy<T>(losses.data<T>(), kernels::ptr_or_null<T>(dlogits), logits.data<T>(),
                                    targets.data<int32_t>(), n, v, dloss);
  });
  return counted;
}
}  // namespace

int64_t cross_entropy_forward(const Tensor& losses, const Tensor& logits, const Tensor& targets) {
  return run(losses, Tensor(), logits, targets, 0.0, "cross_entropy_forward", true);
}

int64_t cross_entropy_fused(const Tensor& losses, const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                            double dloss) {
  return run(losses, dlogits, logits, targets, dloss, "cross_entropy_fused", true);
}

void cross_entropy_fused_counting(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                  const Tensor& targets, double grad_scale, const Tensor& count_and_dloss) {
  const char* op = "cross_entropy_fused_counting";
  ZT_CHECK(count_and_dloss.defined() && count_and_dloss.dtype() == DType::f32 && count_and_dloss.numel() == 2 &&
               count_and_dloss.device() == logits.device(),
           op, ": count_and_dloss must be 2 f32 on the logits' device (", logits.device().name(), "), got ",
           count_and_dloss.defined() ? count_and_dloss.describe() : "none");
  ZT_CHECK(targets.numel() < (int64_t(1) << 24), op, ": ", targets.numel(),
           " targets; the count is kept in f32, exact up to 2^24");
  check_same_device(targets, logits, op);
  check_dtype(targets, DType::i32, op, "targets");
#if ZT_HAS_CUDA
  if (logits.device().is_cuda()) {
    cuda::count_targets(count_and_dloss.data<float>(), targets.data<int32_t>(), targets.numel(), grad_scale);
    run(losses, dlogits, logits, targets, 0.0, op, false, count_and_dloss.data<float>() + 1);
    return;
  }
#endif
  int64_t count = 0;
  const int32_t* t = targets.data<int32_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) count += t[i] != kIgnoreIndex;
  const double dloss = count ? grad_scale / double(count) : 0.0;
  float* out = count_and_dloss.data<float>();
  out[0] = float(count), out[1] = float(dloss);
  run(losses, dlogits, logits, targets, dloss, op, false);
}

}  // namespace zt::ops
