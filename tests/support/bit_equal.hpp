// Bitwise equality of two tensors (same shape, dtype and bytes), wherever they live: the tests'
// check that two runs did the same arithmetic.
#pragma once

#include <cstring>

#include "zt/core/tensor.hpp"

namespace zt::test {

inline bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.to(Device::cpu()), y = b.to(Device::cpu());
  return std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

}  // namespace zt::test
