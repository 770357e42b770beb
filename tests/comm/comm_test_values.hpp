// Test data for collectives: the values rank r holds, which every rank can compute for every
// other rank, so that each rank checks a collective's result against its own reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "zt/comm/reduce_op.hpp"
#include "zt/core/tensor.hpp"

namespace zt::comm::testing {

inline uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// v rounded to what dtype can hold.
inline double representable(DType dtype, double v) {
  switch (dtype) {
    case DType::f32: case DType::f64: return double(float(v));  // tensors are filled and read as floats
    case DType::bf16: return bf16_to_float(float_to_bf16(float(v)));
    case DType::f16: return f16_to_float(float_to_f16(float(v)));
    default: return v;
  }
}

// Element i of rank r's data (salt tells different tensors apart). Integers stay small enough
// that sums over 8 ranks fit every integer dtype; floats are not multiples of a power of two,
// so float sums round.
inline double rank_value(DType dtype, int r, int64_t i, int salt = 0) {
  const uint32_t h = mix(uint32_t(r) * 2654435761U ^ uint32_t(i) * 40503U ^ uint32_t(salt) * 97U);
  switch (dtype) {
    case DType::u8: return double(h % 31);
    case DType::i8: return double(int(h % 31) - 15);
    case DType::i32: case DType::i64: return double(int(h % 200001) - 100000);
    default: return representable(dtype, (double(h % 20001) - 10000.0) / 1000.0);
  }
}

inline Tensor rank_tensor(DType dtype, int r, int64_t n, int salt = 0, int64_t first = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(rank_value(dtype, r, first + i, salt));
  return Tensor::from_floats({n}, v, dtype);
}

// op over ranks 0..n-1 of element i, as the backends compute it (avg of integers truncates).
inline double reduced_value(DType dtype, ReduceOp op, int n, int64_t i, int salt = 0) {
  double acc = rank_value(dtype, 0, i, salt);
  for (int r = 1; r < n; ++r) {
    const double v = rank_value(dtype, r, i, salt);
    if (op == ReduceOp::max) acc = std::max(acc, v);
    else if (op == ReduceOp::min) acc = std::min(acc, v);
    else acc += v;
  }
  if (op == ReduceOp::avg) acc = dtype_is_float(dtype) ? acc / n : std::trunc(acc / n);
  return acc;
}

// The bound on |result - exact| for a float reduction over n ranks: the f32 accumulation and one
// final rounding to dtype.
inline double reduce_tolerance(DType dtype, double exact, int n) {
  const double accumulate = 1e-6 * 10.0 * n;  // |values| <= 10
  switch (dtype) {
    case DType::f64: case DType::f32: return accumulate;
    case DType::bf16: return std::abs(exact) * std::ldexp(1.0, -8) + accumulate;
    case DType::f16: return std::abs(exact) * std::ldexp(1.0, -11) + accumulate;
    default: return 0.0;  // integers: exact
  }
}

// The bound for a reduction that rounds to dtype after every addition, as NCCL's rings and trees
// do: the k-th partial result holds at most k of the n values (|values| <= 10), so the roundings
// add up to at most u * 10 * (2 + 3 + ... + n) with u the dtype's unit roundoff. avg scales every
// value by 1/n first (ncclAvg is a pre-multiplied sum), one more rounding per value.
inline double stepwise_reduce_tolerance(DType dtype, ReduceOp op, int n) {
  double u = 0;
  switch (dtype) {
    case DType::f64: case DType::f32: u = std::ldexp(1.0, -24); break;
    case DType::bf16: u = std::ldexp(1.0, -8); break;
    case DType::f16: u = std::ldexp(1.0, -11); break;
    default: return 0.0;  // integers: exact
  }
  if (op == ReduceOp::max || op == ReduceOp::min) return 10.0 * u;  // one rounding of the input
  const double partials = 10.0 * (double(n) * (n + 1) / 2.0);
  const double bound = op == ReduceOp::avg ? u * (partials / n + 10.0) : u * partials;
  return bound + 1e-6 * 10.0 * n;
}

}  // namespace zt::comm::testing
