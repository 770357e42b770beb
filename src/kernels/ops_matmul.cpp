#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;
using kernels::check_optional;
using kernels::ptr_or_null;

namespace {
Shape weight_shape(WeightLayout layout, int64_t c, int64_t oc) {
  return layout == WeightLayout::out_in ? Shape{oc, c} : Shape{c, oc};
}
}  // namespace

void matmul_forward(const Tensor& out, const Tensor& pre_act, const Tensor& inp, const Tensor& weight,
                    const Tensor& bias, WeightLayout layout, Activation act, const Tensor& residual) {
  ZT_OP_SCOPE("matmul_forward", inp);
  const char* op = "matmul_forward";
  ZT_CHECK(inp.dim() == 2 && out.dim() == 2, op, ": inp and out must be 2-d (N, C), got ", inp.describe(), " and ",
           out.describe());
  const int64_t n = inp.size(0), c = inp.size(1), oc = out.size(1);
  check_matches(out, inp, {n, oc}, op, "out");
  check_matches(weight, inp, weight_shape(layout, c, oc), op, "weight");
  check_optional(bias, inp, {oc}, op, "bias");
  if (act != Activation::none) check_matches(pre_act, inp, {n, oc}, op, "pre_act");
  check_optional(residual, inp, {n, oc}, op, "residual");
  ZT_CHECK(!residual.defined() || residual.raw() != out.raw(), op, ": residual must not be out itself");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::matmul_forward<T>(cuda::ptr<T>(out), act != Activation::none ? cuda::ptr<T>(pre_act) : nullptr,
                              cuda::ptr<T>(inp), cuda::ptr<T>(weight), cuda::ptr<T>(bias), n, c, oc, layout, act,
                              cuda::ptr<T>(residual));
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::matmul_forward<T>(out.data<T>(), ptr_or_null<T>(pre_act), inp.data<T>(), weight.data<T>(),
                           ptr_or_null<T>(bias), n, c, oc, layout, act);
  });
  if (residual.defined()) add(out, out, residual);
}

void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                     const Tensor& inp, const Tensor& weight, const Tensor& pre_act, WeightLayout layout,
                     Activation act, Activation inp_act, const Tensor& inp_pre_act, GradInto dweight_into) {
  ZT_OP_SCOPE("matmul_backward", inp);
  const char* op = "matmul_backward";
  ZT_CHECK(inp.dim() == 2 && dout.dim() == 2, op, ": inp and dout must be 2-d, got ", inp.describe(), " and ",
           dout.describe());
  const int64_t n = inp.size(0), c = inp.size(1), oc = dout.size(1);
  check_matches(dout, inp, {n, oc}, op, "dout");
  check_matches(weight, inp, weight_shape(layout, c, oc), op, "weight");
  check_optional(dinp, inp, {n, c}, op, "dinp");
  check_optional(dweight, inp, weight_shape(layout, c, oc), op, "dweight");
  check_optional(dbias, inp, {oc}, op, "dbias");
  if (act != Activation::none) check_matches(pre_act, inp, {n, oc}, op, "pre_act");
  const bool through_act = inp_act != Activation::none && dinp.defined();
  if (through_act) check_matches(inp_pre_act, inp, {n, c}, op, "inp_pre_act");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda()) {
    cuda::dispatch_float(inp, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::matmul_backward<T>(cuda::ptr<T>(dinp), cuda::ptr<T>(dweight), cuda::ptr<T>(dbias), cuda::ptr<T>(dout),
                               cuda::ptr<T>(inp), cuda::ptr<T>(weight),
                               act != Activation::none ? cuda::ptr<T>(pre_act) : nullptr, n, c, oc, layout, act,
                               through_act ? cuda::ptr<T>(inp_pre_act) : nullptr,
                               dweight_into == GradInto::overwrite);
    });
    return;
  }
#endif
  if (dweight_into == GradInto::overwrite && dweight.defined()) dweight.zero_();  // the CPU's products add
  kernels::dispatch_cpu_float(inp, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::matmul_backward<T>(ptr_or_null<T>(dinp), ptr_or_null<T>(dweight), ptr_or_null<T>(dbias), dout.data<T>(),
                            inp.data<T>(), weight.data<T>(), ptr_or_null<T>(pre_act), n, c, oc, layout, act);
    if (through_act) cpu::gelu_backward<T>(dinp.data<T>(), dinp.data<T>(), inp_pre_act.data<T>(), n * c);
  });
}

}  // namespace zt::ops
