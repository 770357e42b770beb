#include "zt/core/op_profile.hpp"
#include "cpu/cpu_ops.hpp"
#include "dispatch.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

namespace zt::ops {

using kernels::check_matches;

namespace {
// Ids index rows of the table: one outside [0, V) is the caller's data error, named here.
void check_ids(const Tensor& ids, int64_t vocab, const char* op) {
  check_dtype(ids, DType::i32, op, "ids");
  ZT_CHECK(ids.dim() == 1, op, ": ids must be 1-d (N), got ", ids.describe());
  if (!ids.device().is_cpu()) return;
  const int32_t* p = ids.data<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    ZT_CHECK(p[i] >= 0 && p[i] < vocab, op, ": token id ", p[i], " at position ", i,
             " is outside the vocabulary [0, ", vocab, ")");
  }
}
}  // namespace

void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& weight, bool accumulate) {
  ZT_OP_SCOPE("embedding_forward", weight);
  const char* op = "embedding_forward";
  ZT_CHECK(weight.dim() == 2, op, ": weight must be (V, C), got ", weight.describe());
  const int64_t v = weight.size(0), c = weight.size(1);
  check_ids(ids, v, op);
  check_matches(out, weight, {ids.numel(), c}, op, "out");
#if ZT_HAS_CUDA
  if (weight.device().is_cuda()) {
    check_same_device(ids, weight, op);
    cuda::dispatch_float(weight, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::embedding_forward<T>(cuda::ptr<T>(out), ids.data<int32_t>(), cuda::ptr<T>(weight), ids.numel(), v, c,
                                 accumulate);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(weight, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::embedding_forward<T>(out.data<T>(), ids.data<int32_t>(), weight.data<T>(), ids.numel(), v, c, accumulate);
  });
}

void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids) {
  ZT_OP_SCOPE("embedding_backward", dweight);
  const char* op = "embedding_backward";
  ZT_CHECK(dweight.dim() == 2, op, ": dweight must be (V, C), got ", dweight.describe());
  const int64_t v = dweight.size(0), c = dweight.size(1);
  check_ids(ids, v, op);
  check_matches(dout, dweight, {ids.numel(), c}, op, "dout");
#if ZT_HAS_CUDA
  if (dweight.device().is_cuda()) {
    check_same_device(ids, dweight, op);
    cuda::dispatch_float(dweight, op, [&](auto zero) {
      using T = decltype(zero);
      cuda::embedding_backward<T>(cuda::ptr<T>(dweight), cuda::ptr<T>(dout), ids.data<int32_t>(), ids.numel(), v, c);
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(dweight, op, [&](auto zero) {
    using T = decltype(zero);
    cpu::embedding_backward<T>(dweight.data<T>(), dout.data<T>(), ids.data<int32_t>(), ids.numel(), v, c);
  });
}

}  // namespace zt::ops
