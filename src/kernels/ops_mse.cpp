#include "zt/core/op_profile.hpp"
#include "dispatch.hpp"
#include "zt/kernels/ops.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

double mse_loss(const Tensor& dpred, const Tensor& pred, const Tensor& target, double dloss) {
  ZT_OP_SCOPE("mse_loss", pred);
  const char* op = "mse_loss";
  kernels::check_matches(target, pred, pred.shape(), op, "target");
  kernels::check_optional(dpred, pred, pred.shape(), op, "dpred");
  double total = 0;
#if ZT_HAS_CUDA
  if (pred.device().is_cuda()) {
    cuda::dispatch_float(pred, op, [&](auto zero) {
      using T = decltype(zero);
      total = cuda::mse_loss<T>(cuda::ptr<T>(dpred), cuda::ptr<T>(pred), cuda::ptr<T>(target), pred.numel(), dloss);
    });
    return total;
  }
#endif
  kernels::dispatch_cpu_float(pred, op, [&](auto zero) {
    using T = decltype(zero);
    const T* p = pred.data<T>();
    const T* t = target.data<T>();
    T* d = kernels::ptr_or_null<T>(dpred);
    const int64_t n = pred.numel();
    const double g = n ? 2.0 * dloss / double(n) : 0.0;
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double diff = double(p[i]) - double(t[i]);
      s += diff * diff;
      if (d) d[i] = T(g * diff);
    }
    total = n ? s / double(n) : 0.0;
  });
  return total;
}

}  // namespace zt::ops
