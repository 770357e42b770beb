// Casts, sums and reductions. On the CPU these are memory-bound loops; the dtype switch sits
// outside them.
#include <cmath>
#include <cstring>
#include <limits>

#include "zt/core/op_profile.hpp"
#include "dispatch.hpp"
#include "zt/kernels/ops.hpp"
#if ZT_HAS_CUDA
#include "cuda/cuda_ops.hpp"
#endif

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
  ZT_OP_SCOPE("cast", inp);
  const char* op = "cast";
  ZT_CHECK(out.numel() == inp.numel(), op, ": ", inp.describe(), " into ", out.describe(), " differ in size");
#if ZT_HAS_CUDA
  if (inp.device().is_cuda() || out.device().is_cuda()) {
    ZT_CHECK(dtype_is_float(out.dtype()) && dtype_is_float(inp.dtype()), op,
             ": casts are between f32, f64, bf16 and f16, got ", inp.describe(), " into ", out.describe());
    if (inp.device() != out.device()) {  // cast where the output lives
      Tensor staged = Tensor::empty(inp.shape(), inp.dtype(), out.device());
      staged.copy_from(inp);
      cast(out, staged);
      return;
    }
    cuda::set_device(inp.device().index);
    cuda::cast(out.raw(), out.dtype(), inp.raw(), inp.dtype(), inp.numel());
    return;
  }
#endif
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
  ZT_OP_SCOPE("add", a);
  check_matches(b, a, a.shape(), "add", "b");
  ZT_CHECK(out.numel() == a.numel(), "add: out ", out.describe(), " does not match ", a.describe());
  check_dtype(out, a.dtype(), "add", "out");
#if ZT_HAS_CUDA
  if (a.device().is_cuda()) {
    check_same_device(out, a, "add");
    cuda::dispatch_float(a, "add", [&](auto zero) {
      using T = decltype(zero);
      cuda::add<T>(cuda::ptr<T>(out), cuda::ptr<T>(a), cuda::ptr<T>(b), a.numel());
    });
    return;
  }
#endif
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

void add_(const Tensor& acc, const Tensor& x) {
  ZT_OP_SCOPE("add_", acc);
  if (acc.dtype() == x.dtype() && (acc.dtype() == DType::f32 || acc.dtype() == DType::f64)) {
    add(acc, acc, x);
    return;
  }
  // Mixed or 16-bit dtypes (folding a gradient into its bf16/f16 buffer): convert per element.
  ZT_CHECK(acc.numel() == x.numel(), "add_: ", x.describe(), " into ", acc.describe(), " differ in size");
#if ZT_HAS_CUDA
  if (acc.device().is_cuda()) {
    if (acc.dtype() == x.dtype()) {
      add(acc, acc, x);
      return;
    }
    const Tensor converted = Tensor::empty(acc.shape(), acc.dtype(), acc.device());
    cast(converted, x);
    add(acc, acc, converted);
    return;
  }
#endif
  require_cpu(acc, "add_");
  require_cpu(x, "add_");
  if (x.dtype() == DType::f32 && (acc.dtype() == DType::bf16 || acc.dtype() == DType::f16)) {
    // The hot case (an f32 gradient folded into its 16-bit buffer), in one pass with the same
    // rounding as the general path: the sum in double, then to float, then to 16 bits.
    auto* a = static_cast<uint16_t*>(acc.raw());
    const float* v = x.data<float>();
    const int64_t n = acc.numel();
    const bool bf16 = acc.dtype() == DType::bf16;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double sum = double(bf16 ? bf16_to_float(a[i]) : f16_to_float(a[i])) + double(v[i]);
      a[i] = bf16 ? float_to_bf16(float(sum)) : float_to_f16(float(sum));
    }
    return;
  }
  Tensor sum = Tensor::empty(acc.shape(), DType::f64, acc.device());
  double* s = sum.data<double>();
  for_each_float(acc, "add_", [&](int64_t i, double v) { s[i] = v; });
  for_each_float(x, "add_", [&](int64_t i, double v) { s[i] += v; });
  cast(acc, sum);
}

void scale_(const Tensor& x, double factor) {
  ZT_OP_SCOPE("scale_", x);
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::dispatch_float(x, "scale_", [&](auto zero) {
      using T = decltype(zero);
      cuda::scale<T>(cuda::ptr<T>(x), factor, x.numel());
    });
    return;
  }
#endif
  kernels::dispatch_cpu_float(x, "scale_", [&](auto zero) {
    using T = decltype(zero);
    T* p = x.data<T>();
    const T f = T(factor);
    const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] *= f;
  });
}

void zero_ranges(const Tensor& x, const Tensor& ranges) {
  ZT_OP_SCOPE("zero_ranges", x);
  ZT_CHECK(x.defined() && ranges.defined() && ranges.dtype() == DType::i64 && ranges.dim() == 2 &&
               ranges.size(1) == 2 && ranges.device() == x.device(),
           "zero_ranges: ranges must be (R, 2) i64 on the buffer's device, got ", ranges.describe(), " for ",
           x.describe());
  const int64_t count = ranges.size(0);
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::set_device(x.device().index);
    cuda::zero_ranges(x.raw(), dtype_size(x.dtype()), ranges.data<int64_t>(), count);
    return;
  }
#endif
  require_cpu(x, "zero_ranges");
  const int64_t* r = ranges.data<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    ZT_CHECK(0 <= r[2 * i] && r[2 * i] <= r[2 * i + 1] && r[2 * i + 1] <= x.numel(), "zero_ranges: range [",
             r[2 * i], ", ", r[2 * i + 1], ") is outside the buffer's ", x.numel(), " elements");
    x.view(size_t(r[2 * i]), {r[2 * i + 1] - r[2 * i]}).zero_();
  }
}

double sum_squares(const Tensor& x) {
  ZT_OP_SCOPE("sum_squares", x);
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::set_device(x.device().index);
    return cuda::sum_squares(x.raw(), x.dtype(), x.numel());
  }
#endif
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

void sum_squares_into(const Tensor& sum_of_squares, const Tensor& x) {
  ZT_OP_SCOPE("sum_squares", x);
  ZT_CHECK(sum_of_squares.defined() && sum_of_squares.dtype() == DType::f64 && sum_of_squares.numel() == 1 &&
               sum_of_squares.device() == x.device(),
           "sum_squares_into: the sum must be one f64 on ", x.device().name(), " (x's device), got ",
           sum_of_squares.defined() ? sum_of_squares.describe() : "none");
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::set_device(x.device().index);
    cuda::sum_squares_into(sum_of_squares.data<double>(), x.raw(), x.dtype(), x.numel());
    return;
  }
#endif
  sum_of_squares.data<double>()[0] = sum_squares(x);
}

double clip_coefficient(double global_norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double coef = max_norm / (global_norm + 1e-6);
  return coef < 1.0 ? coef : 1.0;
}

void clip_scale(const Tensor& scale, const Tensor& sum_of_squares, double max_norm, double denominator) {
  ZT_CHECK(sum_of_squares.defined() && sum_of_squares.dtype() == DType::f64 && sum_of_squares.numel() == 1,
           "clip_scale: the sum of squares must be one f64, got ",
           sum_of_squares.defined() ? sum_of_squares.describe() : "none");
  ZT_CHECK(scale.defined() && scale.dtype() == DType::f32 && scale.numel() == 1 &&
               scale.device() == sum_of_squares.device(),
           "clip_scale: the scale must be one f32 on ", sum_of_squares.device().name(), ", got ",
           scale.defined() ? scale.describe() : "none");
  ZT_CHECK(denominator > 0 && std::isfinite(denominator), "clip_scale: the denominator must be positive, got ",
           denominator);
#if ZT_HAS_CUDA
  if (scale.device().is_cuda()) {
    cuda::set_device(scale.device().index);
    cuda::clip_scale(scale.data<float>(), sum_of_squares.data<double>(), max_norm, denominator);
    return;
  }
#endif
  require_cpu(scale, "clip_scale");
  const double sum = sum_of_squares.data<double>()[0];
  if (!std::isfinite(sum)) {
    scale.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  scale.data<float>()[0] = float(clip_coefficient(std::sqrt(sum) / denominator, max_norm) / denominator);
}

bool all_finite(const Tensor& x) {
  ZT_OP_SCOPE("all_finite", x);
#if ZT_HAS_CUDA
  if (x.device().is_cuda()) {
    cuda::set_device(x.device().index);
    return cuda::all_finite(x.raw(), x.dtype(), x.numel());
  }
#endif
  require_cpu(x, "all_finite");
  bool finite = true;
  for_each_float(x, "all_finite", [&](int64_t, double v) { finite = finite && std::isfinite(v); });
  return finite;
}

namespace {
void copy_columns(const Tensor& packed, const std::vector<Tensor>& parts, bool to_packed, const char* op) {
  ZT_OP_SCOPE("copy_columns", packed);
  ZT_CHECK(packed.dim() == 2, op, ": packed must be (N, W), got ", packed.describe());
  const int64_t n = packed.size(0), width = packed.size(1);
  int64_t total = 0;
  for (const Tensor& part : parts) {
    ZT_CHECK(part.dim() == 2 && part.size(0) == n, op, ": each part must be (", n, ", w), got ", part.describe());
    check_dtype(part, packed.dtype(), op, "part");
    check_same_device(part, packed, op);
    total += part.size(1);
  }
  ZT_CHECK(total == width, op, ": the parts' widths add up to ", total, ", not the packed width ", width);
  const size_t esize = dtype_size(packed.dtype());
#if ZT_HAS_CUDA
  if (packed.device().is_cuda()) {
    cuda::set_device(packed.device().index);
    int64_t col = 0;
    for (const Tensor& part : parts) {
      cuda::copy_columns(packed.raw(), width, part.raw(), part.size(1), col, n, esize, to_packed);
      col += part.size(1);
    }
    return;
  }
#endif
  char* base = static_cast<char*>(packed.raw());
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    int64_t col = 0;
    for (const Tensor& part : parts) {
      const int64_t w = part.size(1);
      char* packed_row = base + size_t(row * width + col) * esize;
      char* part_row = static_cast<char*>(part.raw()) + size_t(row * w) * esize;
      if (to_packed) std::memcpy(packed_row, part_row, size_t(w) * esize);
      else std::memcpy(part_row, packed_row, size_t(w) * esize);
      col += w;
    }
  }
}
}  // namespace

void pack_columns(const Tensor& packed, const std::vector<Tensor>& parts) {
  copy_columns(packed, parts, true, "pack_columns");
}

void unpack_columns(const std::vector<Tensor>& parts, const Tensor& packed) {
  copy_columns(packed, parts, false, "unpack_columns");
}

}  // namespace zt::ops
