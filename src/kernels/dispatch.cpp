#include "dispatch.hpp"

#include "zt/kernels/ops.hpp"

namespace zt::ops {

DType stats_dtype(DType input) { return input == DType::bf16 || input == DType::f16 ? DType::f32 : input; }

}  // namespace zt::ops

namespace zt::kernels {

void check_matches(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg) {
  check_shape(t, shape, op, arg);
  check_dtype(t, like.dtype(), op, arg);
  check_same_device(t, like, op);
}

void check_stats(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg) {
  check_shape(t, shape, op, arg);
  check_dtype(t, ops::stats_dtype(like.dtype()), op, arg);
  check_same_device(t, like, op);
}

void check_optional(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg) {
  if (t.defined()) check_matches(t, like, shape, op, arg);
}

}  // namespace zt::kernels
