// AdamW on flat f32 buffers with PyTorch's arithmetic (torch.optim.AdamW, single-tensor path):
// decay, then the moments, then the bias-corrected update, in that order.
//
// adamw_step is the fast form: AVX-512 or AVX2 (chosen at run time), each thread a contiguous
// block of whole vectors, the tail run through the same vector code on a padded copy, so every
// element sees the same instructions. It multiplies and adds separately (no FMA), in the order
// of the scalar loop below, which stays as the reference (the compiler may fuse its multiply-adds,
// so the two agree to rounding, not bitwise). The gradient may be f32, bf16 or f16 (widened
// exactly in the pass, so the result is that of the widened f32 gradient), and with param_out the
// updated parameters are also written rounded to f32, bf16 or f16 (nearest even, as float_to_bf16
// and float_to_f16) in the same pass: what an offloaded optimizer reads from the device's
// gradients and sends back as parameters, with no f32 copy of either.
// GCC 12's AVX-512 headers start conversions from _mm512_undefined_*() and warn that it may be
// used uninitialized (a false positive in the headers, once per instantiation).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "cpu_ops.hpp"

namespace zt::cpu {

namespace {

// The step's scalars, derived once as the reference derives them.
struct AdamWScalars {
  float beta2, one_minus_beta1, one_minus_beta2, eps, decay, step_size, bias_correction2_sqrt, scale;
};

AdamWScalars adamw_scalars(const ops::AdamWParams& p, double grad_scale) {
  // 1 - beta in double, as torch computes it from Python floats: 1.0f - 0.999f is 1.3e-5 off.
  const double bias_correction1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, double(p.step));
  return {float(p.beta2),
          float(1.0 - p.beta1),
          float(1.0 - p.beta2),
          float(p.eps),
          float(1.0 - p.lr * p.weight_decay),
          float(p.lr / bias_correction1),
          float(std::sqrt(bias_correction2)),
          float(grad_scale)};
}

// What the gradient is stored as and what the updated parameters are copied into (none, f32,
// bf16, f16): each pair gets its own instantiation of the block, so the inner loop has no branches.
enum class Half { f32, bf16, f16, none };

Half half_of(DType dtype, const char* what) {
  switch (dtype) {
    case DType::f32: return Half::f32;
    case DType::bf16: return Half::bf16;
    case DType::f16: return Half::f16;
    default: ZT_THROW("adamw_step: the ", what, " must be f32, bf16 or f16, got ", dtype_name(dtype));
  }
}

// Elements [begin, end) with one instruction set; end - begin is a multiple of the width.
using AdamWBlock = void (*)(float* param, const void* grad, float* exp_avg, float* exp_avg_sq, void* param_out,
                            int64_t begin, int64_t end, const AdamWScalars& s);

// Gradients widen exactly (bf16: a shift; f16: F16C's conversion, exact for every value).
template <Half G>
__attribute__((target("avx512f,avx512bw"))) inline __m512 load_grad16(const void* grad, int64_t i) {
  if constexpr (G == Half::f32) return _mm512_loadu_ps(static_cast<const float*>(grad) + i);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(grad) + i));
  if constexpr (G == Half::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

template <Half G>
inline __m256 load_grad8(const void* grad, int64_t i) {
  if constexpr (G == Half::f32) return _mm256_loadu_ps(static_cast<const float*>(grad) + i);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(grad) + i));
  if constexpr (G == Half::bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

// f16 rounds to nearest even in hardware, as float_to_f16 does (subnormals and overflow to inf
// included); NaNs become float_to_f16's quiet NaN (the hardware keeps the payload), a rare lane fixed
// in scalar code.
inline void fix_f16_nans(const float* p, uint16_t* out, unsigned nan_lanes) {
  for (int l = 0; nan_lanes; ++l, nan_lanes >>= 1)
    if (nan_lanes & 1u) out[l] = float_to_f16(p[l]);
}

template <Half G, Half O>
__attribute__((target("avx512f,avx512bw"))) void adamw_block_avx512(float* param, const void* grad, float* exp_avg,
                                                                    float* exp_avg_sq, void* param_out,
                                                                    int64_t begin, int64_t end,
                                                                    const AdamWScalars& s) {
  const __m512 beta2 = _mm512_set1_ps(s.beta2), omb1 = _mm512_set1_ps(s.one_minus_beta1),
               omb2 = _mm512_set1_ps(s.one_minus_beta2), eps = _mm512_set1_ps(s.eps),
               decay = _mm512_set1_ps(s.decay), step_size = _mm512_set1_ps(s.step_size),
               bc2 = _mm512_set1_ps(s.bias_correction2_sqrt), scale = _mm512_set1_ps(s.scale);
  const __m512i round_bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = begin; i < end; i += 16) {
    const __m512 g = _mm512_mul_ps(load_grad16<G>(grad, i), scale);
    __m512 m = _mm512_loadu_ps(exp_avg + i);
    m = _mm512_add_ps(m, _mm512_mul_ps(omb1, _mm512_sub_ps(g, m)));
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(exp_avg_sq + i), beta2),
                                   _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
    _mm512_storeu_ps(exp_avg + i, m);
    _mm512_storeu_ps(exp_avg_sq + i, v);
    const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), bc2), eps);
    const __m512 p = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(param + i), decay),
                                   _mm512_mul_ps(step_size, _mm512_div_ps(m, denom)));
    _mm512_storeu_ps(param + i, p);
    if constexpr (O == Half::f32) {
      _mm512_storeu_ps(static_cast<float*>(param_out) + i, p);
    } else if constexpr (O == Half::bf16) {
      const __m512i u = _mm512_castps_si512(p);
      const __m512i rounded = _mm512_srli_epi32(
          _mm512_add_epi32(u, _mm512_add_epi32(round_bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
      const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet);
      const __m512i bits = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q), rounded, nan);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(param_out) + i), _mm512_cvtepi32_epi16(bits));
    } else if constexpr (O == Half::f16) {
      uint16_t* out = static_cast<uint16_t*>(param_out) + i;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if (const unsigned nans = _mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q)) fix_f16_nans(param + i, out, nans);
    }
  }
}

template <Half G, Half O>
void adamw_block_avx2(float* param, const void* grad, float* exp_avg, float* exp_avg_sq, void* param_out,
                      int64_t begin, int64_t end, const AdamWScalars& s) {
  const __m256 beta2 = _mm256_set1_ps(s.beta2), omb1 = _mm256_set1_ps(s.one_minus_beta1),
               omb2 = _mm256_set1_ps(s.one_minus_beta2), eps = _mm256_set1_ps(s.eps),
               decay = _mm256_set1_ps(s.decay), step_size = _mm256_set1_ps(s.step_size),
               bc2 = _mm256_set1_ps(s.bias_correction2_sqrt), scale = _mm256_set1_ps(s.scale);
  const __m256i round_bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
  for (int64_t i = begin; i < end; i += 8) {
    const __m256 g = _mm256_mul_ps(load_grad8<G>(grad, i), scale);
    __m256 m = _mm256_loadu_ps(exp_avg + i);
    m = _mm256_add_ps(m, _mm256_mul_ps(omb1, _mm256_sub_ps(g, m)));
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(exp_avg_sq + i), beta2),
                                   _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
    _mm256_storeu_ps(exp_avg + i, m);
    _mm256_storeu_ps(exp_avg_sq + i, v);
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2), eps);
    const __m256 p = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(param + i), decay),
                                   _mm256_mul_ps(step_size, _mm256_div_ps(m, denom)));
    _mm256_storeu_ps(param + i, p);
    if constexpr (O == Half::f32) {
      _mm256_storeu_ps(static_cast<float*>(param_out) + i, p);
    } else if constexpr (O == Half::bf16) {
      const __m256i u = _mm256_castps_si256(p);
      const __m256i rounded = _mm256_srli_epi32(
          _mm256_add_epi32(u, _mm256_add_epi32(round_bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
      const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
      const __m256i bits = _mm256_blendv_epi8(rounded, nan, _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_UNORD_Q)));
      // packus keeps 128-bit lanes apart: [0-3, 0-3 | 4-7, 4-7]; gather quarters 0 and 2.
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(param_out) + i), _mm256_castsi256_si128(packed));
    } else if constexpr (O == Half::f16) {
      uint16_t* out = static_cast<uint16_t*>(param_out) + i;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      if (const unsigned nans = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(p, p, _CMP_UNORD_Q))))
        fix_f16_nans(param + i, out, nans);
    }
  }
}

constexpr int64_t kTailWidth = 16;

template <Half G, Half O>
AdamWBlock pick_typed(bool avx512) {
  return avx512 ? adamw_block_avx512<G, O> : adamw_block_avx2<G, O>;
}

template <Half G>
AdamWBlock pick_out(Half out, bool avx512) {
  switch (out) {
    case Half::f32: return pick_typed<G, Half::f32>(avx512);
    case Half::bf16: return pick_typed<G, Half::bf16>(avx512);
    case Half::f16: return pick_typed<G, Half::f16>(avx512);
    case Half::none: break;
  }
  return pick_typed<G, Half::none>(avx512);
}

std::atomic<bool> g_force_avx2{false};

AdamWBlock pick_block(Half grad, Half out, int64_t& width) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const bool avx512 = has_avx512 && !g_force_avx2.load(std::memory_order_relaxed);
  width = avx512 ? 16 : 8;
  switch (grad) {
    case Half::bf16: return pick_out<Half::bf16>(out, avx512);
    case Half::f16: return pick_out<Half::f16>(out, avx512);
    default: return pick_out<Half::f32>(out, avx512);
  }
}

}  // namespace

bool adamw_force_avx2(bool force) { return g_force_avx2.exchange(force); }

void adamw_step(float* param, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, void* param_out, DType out_dtype) {
  const AdamWScalars s = adamw_scalars(p, grad_scale);
  const Half g_kind = half_of(grad_dtype, "gradient");
  const Half o_kind = param_out ? half_of(out_dtype, "parameter copy") : Half::none;
  int64_t width = 0;
  const AdamWBlock block = pick_block(g_kind, o_kind, width);
  const int64_t body = n / width * width;
  // Contiguous blocks per thread (streams the prefetchers follow); small buffers stay on one thread.
#pragma omp parallel if (body >= (int64_t(1) << 16))
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t vectors = body / width;
    const int64_t begin = vectors * t / threads * width, end = vectors * (t + 1) / threads * width;
    block(param, grad, exp_avg, exp_avg_sq, param_out, begin, end, s);
  }
  if (body == n) return;
  // The tail through the same vector code, on padded copies.
  const size_t grad_bytes = dtype_size(grad_dtype), out_bytes = param_out ? dtype_size(out_dtype) : 0;
  alignas(64) float tp[kTailWidth] = {}, tm[kTailWidth] = {}, tv[kTailWidth] = {}, tg[kTailWidth] = {},
                    to[kTailWidth] = {};
  const size_t rest = size_t(n - body);
  std::memcpy(tp, param + body, rest * sizeof(float));
  std::memcpy(tg, static_cast<const char*>(grad) + size_t(body) * grad_bytes, rest * grad_bytes);
  std::memcpy(tm, exp_avg + body, rest * sizeof(float));
  std::memcpy(tv, exp_avg_sq + body, rest * sizeof(float));
  block(tp, tg, tm, tv, param_out ? to : nullptr, 0, width, s);
  std::memcpy(param + body, tp, rest * sizeof(float));
  std::memcpy(exp_avg + body, tm, rest * sizeof(float));
  std::memcpy(exp_avg_sq + body, tv, rest * sizeof(float));
  if (param_out) std::memcpy(static_cast<char*>(param_out) + size_t(body) * out_bytes, to, rest * out_bytes);
}

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, uint16_t* param_bf16) {
  adamw_step(param, grad, DType::f32, exp_avg, exp_avg_sq, n, p, grad_scale, param_bf16, DType::bf16);
}

void adamw_step_reference(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                          const ops::AdamWParams& p, double grad_scale) {
  const AdamWScalars s = adamw_scalars(p, grad_scale);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] * s.scale;
    float m = exp_avg[i];
    m = m + s.one_minus_beta1 * (g - m);  // lerp, as torch
    const float v = exp_avg_sq[i] * s.beta2 + s.one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    const float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;
    param[i] = param[i] * s.decay - s.step_size * (m / denom);
  }
}

}  // namespace zt::cpu
