#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;
using kernels::check_optional;
using kernels::check_stats;
using kernels::ptr_or_null;

namespace {

// Checks the residual and sum of a *_forward_residual op against inp (N, C).
void check_residual(const Tensor& sum, const Tensor& residual, const Tensor& inp, const char* op) {
  ZT_CHECK(inp.dim() == 2, op, ": inp must be (N, C), got ", inp.describe());
  check_matches(residual, inp, inp.shape(), op, "residual");
  check_matches(sum, inp, inp.shape(), op, "sum");
}

// layernorm_forward, after sum = inp + residual when residual is given.
void layernorm_forward_after_add(const char* op, const Tensor& sum, const Tensor& out, const Tensor& mean,
                                 const Tensor& rstd, const Tensor& inp, const Tensor& residual, const Tensor& weight,
                                 const Tensor& bias, double eps) {
  ZT_CHECK(inp.dim() == 2, op, ": inp must be (N, C), got ", inp.describe());
  const int64_t n = inp.size(0), c = inp.size(1);
  check_matches(out, inp, {n, c}, op, "out");
  check_stats(mean, inp, {n}, op, "mean");
  check_stats(rstd, inp, {n}, op, "rstd");
  check_matches(weight, inp, {c}, op, "weight");
  check_optional(bias, inp, {c}, op, "bias");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::layernorm_forward<T>(cuda::ptr<T>(out), mean.data<float>(), rstd.data<float>(), cuda::ptr<T>(inp),
                                 cuda::ptr<T>(weight), cuda::ptr<T>(bias), n, c, eps, cuda::ptr<T>(residual),
                                 cuda::ptr<T>(sum));
    });
    return;
  }
#endif
  if (residual.defined()) ops::add(sum, inp, residual);
  const Tensor& x = residual.defined() ? sum : inp;
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::layernorm_forward<T>(out.data<T>(), mean.data<T>(), rstd.data<T>(), x.data<T>(), weight.data<T>(),
                              ptr_or_null<T>(bias), n, c, eps);
  });
}

// rmsnorm_forward, after sum = inp + residual when residual is given.
void rmsnorm_forward_after_add(const char* op, const Tensor& sum, const Tensor& out, const Tensor& rstd,
                               const Tensor& inp, const Tensor& residual, const Tensor& weight, double eps) {
  ZT_CHECK(inp.dim() == 2, op, ": inp must be (N, C), got ", inp.describe());
  const int64_t n = inp.size(0), c = inp.size(1);
  check_matches(out, inp, {n, c}, op, "out");
  check_stats(rstd, inp, {n}, op, "rstd");
  check_matches(weight, inp, {c}, op, "weight");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::rmsnorm_forward<T>(cuda::ptr<T>(out), rstd.data<float>(), cuda::ptr<T>(inp), cuda::ptr<T>(weight), n, c,
                               eps, cuda::ptr<T>(residual), cuda::ptr<T>(sum));
    });
    return;
  }
#endif
  if (residual.defined()) ops::add(sum, inp, residual);
  const Tensor& x = residual.defined() ? sum : inp;
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::rmsnorm_forward<T>(out.data<T>(), rstd.data<T>(), x.data<T>(), weight.data<T>(), n, c, eps);
  });
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, double eps) {
  ZT_OP_SCOPE("layernorm_forward", inp);
  layernorm_forward_after_add("layernorm_forward", Tensor(), out, mean, rstd, inp, Tensor(), weight, bias, eps);
}

void layernorm_forward_residual(const Tensor& sum, const Tensor& out, const Tensor& mean, const Tensor& rstd,
                                const Tensor& inp, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                                double eps) {
  ZT_OP_SCOPE("layernorm_forward", inp);
  check_residual(sum, residual, inp, "layernorm_forward_residual");
  layernorm_forward_after_add("layernorm_forward_residual", sum, out, mean, rstd, inp, residual, weight, bias, eps);
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight, double eps) {
  ZT_OP_SCOPE("rmsnorm_forward", inp);
  rmsnorm_forward_after_add("rmsnorm_forward", Tensor(), out, rstd, inp, Tensor(), weight, eps);
}

void rmsnorm_forward_residual(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& inp,
                              const Tensor& residual, const Tensor& weight, double eps) {
  ZT_OP_SCOPE("rmsnorm_forward", inp);
  check_residual(sum, residual, inp, "rmsnorm_forward_residual");
  rmsnorm_forward_after_add("rmsnorm_forward_residual", sum, out, rstd, inp, residual, weight, eps);
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                        const Tensor& inp, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dinp_add) {
  ZT_OP_SCOPE("layernorm_backward", inp);
  const char* op = "layernorm_backward";
  ZT_CHECK(inp.dim() == 2, op, ": inp must be (N, C), got ", inp.describe());
  const int64_t n = inp.size(0), c = inp.size(1);
  check_matches(dout, inp, {n, c}, op, "dout");
  check_matches(weight, inp, {c}, op, "weight");
  check_optional(dinp, inp, {n, c}, op, "dinp");
  check_optional(dweight, inp, {c}, op, "dweight");
  check_optional(dbias, inp, {c}, op, "dbias");
  check_stats(mean, inp, {n}, op, "mean");
  check_stats(rstd, inp, {n}, op, "rstd");
  check_optional(dinp_add, inp, {n, c}, op, "dinp_add");
  ZT_CHECK(!dinp_add.defined() || (dinp.defined() && dinp.raw() != dinp_add.raw()), op,
           ": dinp_add needs a dinp of its own to add into");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::layernorm_backward<T>(cuda::ptr<T>(dinp), cuda::ptr<T>(dweight), cuda::ptr<T>(dbias), cuda::ptr<T>(dout),
                                  cuda::ptr<T>(inp), cuda::ptr<T>(weight), mean.data<float>(), rstd.data<float>(), n,
                                  c, cuda::ptr<T>(dinp_add));
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::layernorm_backward<T>(ptr_or_null<T>(dinp), ptr_or_null<T>(dweight), ptr_or_null<T>(dbias), dout.data<T>(),
                               inp.data<T>(), weight.data<T>(), mean.data<T>(), rstd.data<T>(), n, c);
  });
  if (dinp_add.defined()) ops::add(dinp, dinp, dinp_add);
}

void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight, const Tensor& rstd, const Tensor& dinp_add) {
  ZT_OP_SCOPE("rmsnorm_backward", inp);
  const char* op = "rmsnorm_backward";
  ZT_CHECK(inp.dim() == 2, op, ": inp must be (N, C), got ", inp.describe());
  const int64_t n = inp.size(0), c = inp.size(1);
  check_matches(dout, inp, {n, c}, op, "dout");
  check_matches(weight, inp, {c}, op, "weight");
  check_optional(dinp, inp, {n, c}, op, "dinp");
  check_optional(dweight, inp, {c}, op, "dweight");
  check_stats(rstd, inp, {n}, op, "rstd");
  check_optional(dinp_add, inp, {n, c}, op, "dinp_add");
  ZT_CHECK(!dinp_add.defined() || (dinp.defined() && dinp.raw() != dinp_add.raw()), op,
           ": dinp_add needs a dinp of its own to add into");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::rmsnorm_backward<T>(cuda::ptr<T>(dinp), cuda::ptr<T>(dweight), cuda::ptr<T>(dout), cuda::ptr<T>(inp),
                                cuda::ptr<T>(weight), rstd.data<float>(), n, c, cuda::ptr<T>(dinp_add));
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::rmsnorm_backward<T>(ptr_or_null<T>(dinp), ptr_or_null<T>(dweight), dout.data<T>(), inp.data<T>(),
                             weight.data<T>(), rstd.data<T>(), n, c);
  });
  if (dinp_add.defined()) ops::add(dinp, dinp, dinp_add);
}

}  // namespace zt::ops
