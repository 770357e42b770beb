// Helpers for the op table: argument checks that name the op, and dispatch on the float type.
#pragma once

#include "zt/core/tensor.hpp"

namespace zt::kernels {

// Calls fn(float{}) or fn(double{}) by the dtype of a CPU tensor; other dtypes are an error.
template <class Fn>
void dispatch_cpu_float(const Tensor& t, const char* op, Fn&& fn) {
  ZT_CHECK(t.device().is_cpu(), op, ": no kernel for ", t.device().name(), " tensors in this build");
  switch (t.dtype()) {
    case DType::f32: fn(float{}); return;
    case DType::f64: fn(double{}); return;
    default: ZT_THROW(op, ": the CPU kernel takes f32 or f64, got ", dtype_name(t.dtype()));
  }
}

// The pointer to t's data as T, or nullptr for an undefined (optional) tensor.
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// Checks that an optional tensor, when given, matches the reference's dtype, device and shape.
void check_optional(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg);
void check_matches(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg);
// Checks saved statistics: shape, dtype ops::stats_dtype(like's dtype), like's device.
void check_stats(const Tensor& t, const Tensor& like, const Shape& shape, const char* op, const char* arg);

}  // namespace zt::kernels
