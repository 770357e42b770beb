#include "dispatch.hpp"

namespace zt::kernels {

void check_matches(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg) {
  check_shape(t, shape, op, arg);
  check_dtype(t, like.dtype(), op, arg);
  check_same_device(t, like, op);
}

void check_optional(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg) {
  if (t.defined()) check_matches(t, like, shape, op, arg);
}

}  // namespace zt::kernels
