// Casts, sums and reductions. On the CPU these are memory-bound loops; the dtype switch sits
// outside them.
#include <cmath>

#include "dispatch.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::ops {

using kernels::check_matches;

namespace {

template <class Fn>
void for_each_float(const Tensor& t, const char* op, Fn&& fn) {  // fn(i, value as float) over bf16/f16/f32/f64
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: { const float* p = t.data<float>(); for (int64_t i = 0; i < n; ++i) fn(i, double(p[i])); break; }
    case DType::f64: { const double* p = t.data<double>(); for (int64_t i = 0; i < n; ++i) fn(i, p[i]); break; }
    case DType::bf16: { auto* p = static_cast<const uint16_t*>(t.raw()); for (int64_t i = 0; i < n; ++i) fn(i, double(bf16_to_float(p[i]))); break; }
    case DType::f16: { auto* p = static_cast<const uint16_t*>(t.raw()); for (int64_t i = 0; i < n; ++i) fn(i, double(f16_to_float(p[i]))); break; }
    default: ZT_THROW(op, ": expected a floating-point tensor, got ", t.describe());
  }
}

void require_cpu(const Tensor& t, const char* op) {
  ZT_CHECK(t.device().is_cpu(), op, ": no kernel for ", t.device().name(), " tensors in this build");
}

}  // namespace

void cast(const Tensor& out, const Tensor& inp) {
  const char* op = "cast";
  ZT_CHECK(out.numel() == inp.numel(), op, ": ", inp.describe(), " into ", out.describe(), " differ in size");
  require_cpu(inp, op);
  require_cpu(out, op);
  ZT_CHECK(dtype_is_float(out.dtype()) && dtype_is_float(inp.dtype()), op, ": casts are between f32, f64, bf16 and f16, got ",
           inp.describe(), " into ", out.describe());
  if (out.dtype() == inp.dtype()) {
    out.copy_from(inp);
    return;
  }
  const int64_t n = inp.numel();
  if (inp.dtype() == DType::f32 && out.dtype() == DType::bf16) {  // the hot path of mixed precision
    const float* src = inp.data<float>();
    auto* dst = static_cast<uint16_t*>(out.raw());
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
    return;
  }
  void* dst = out.raw();
  const DType dt = out.dtype();
  for_each_float(inp, op, [&](int64_t i, double v) {
    switch (dt) {
      case DType::f32: static_cast<float*>(dst)[i] = float(v); break;
      case DType::f64: static_cast<double*>(dst)[i] = v; break;
      case DType::bf16: static_cast<uint16_t*>(dst)[i] = float_to_bf16(float(v)); break;
      default: static_cast<uint16_t*>(dst)[i] = float_to_f16(float(v)); break;
    }
  });
}

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  check_matches(b, a, a.shape(), "add", "b");
  ZT_CHECK(out.numel() == a.numel(), "add: out ", out.describe(), " does not match ", a.describe());
  check_dtype(out, a.dtype(), "add", "out");
  kernels::dispatch_cpu_float(a, "add", [&](auto zero) {
    using T = decltype(zero);
    T* o = out.data<T>();
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
  });
}

void add_(const Tensor& acc, const Tensor& x) { add(acc, acc, x); }

void scale_(const Tensor& x, double factor) {
  kernels::dispatch_cpu_float(x, "scale_", [&](auto zero) {
    using T = decltype(zero);
    T* p = x.data<T>();
    const T f = T(factor);
    const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] *= f;
  });
}

double sum_squares(const Tensor& x) {
  require_cpu(x, "sum_squares");
  if (x.dtype() == DType::f32) {
    const float* p = x.data<float>();
    const int64_t n = x.numel();
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
    return s;
  }
  double s = 0;
  for_each_float(x, "sum_squares", [&](int64_t, double v) { s += v * v; });
  return s;
}

bool all_finite(const Tensor& x) {
  require_cpu(x, "all_finite");
  bool finite = true;
  for_each_float(x, "all_finite", [&](int64_t, double v) { finite = finite && std::isfinite(v); });
  return finite;
}

}  // namespace zt::ops
