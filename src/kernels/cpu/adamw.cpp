// AdamW on flat f32 buffers with PyTorch's arithmetic (torch.optim.AdamW, single-tensor path):
// decay, then the moments, then the bias-corrected update, in that order.
//
// adamw_step is the fast form: AVX-512 or AVX2 (chosen at run time), each thread a contiguous
// block of whole vectors, the tail run through the same vector code on a padded copy, so every
// element sees the same instructions. It multiplies and adds separately (no FMA), in the order
// of the scalar loop below, which stays as the reference (the compiler may fuse its multiply-adds,
// so the two agree to rounding, not bitwise). With param_bf16 it also writes the
// updated parameters rounded to bf16 (nearest even, as float_to_bf16) in the same pass: the copy
// an offloaded optimizer sends back to the device.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
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

// Elements [begin, end) with one instruction set; end - begin is a multiple of the width.
using AdamWBlock = void (*)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, uint16_t* param_bf16,
                            int64_t begin, int64_t end, const AdamWScalars& s);

__attribute__((target("avx512f,avx512bw"))) void adamw_block_avx512(float* param, const float* grad, float* exp_avg,
                                                                    float* exp_avg_sq, uint16_t* param_bf16,
                                                                    int64_t begin, int64_t end,
                                                                    const AdamWScalars& s) {
  const __m512 beta2 = _mm512_set1_ps(s.beta2), omb1 = _mm512_set1_ps(s.one_minus_beta1),
               omb2 = _mm512_set1_ps(s.one_minus_beta2), eps = _mm512_set1_ps(s.eps),
               decay = _mm512_set1_ps(s.decay), step_size = _mm512_set1_ps(s.step_size),
               bc2 = _mm512_set1_ps(s.bias_correction2_sqrt), scale = _mm512_set1_ps(s.scale);
  const __m512i round_bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = begin; i < end; i += 16) {
    const __m512 g = _mm512_mul_ps(_mm512_loadu_ps(grad + i), scale);
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
    if (param_bf16) {
      const __m512i u = _mm512_castps_si512(p);
      const __m512i rounded = _mm512_srli_epi32(
          _mm512_add_epi32(u, _mm512_add_epi32(round_bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
      const __m512i nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet);
      const __m512i bits = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q), rounded, nan);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(param_bf16 + i), _mm512_cvtepi32_epi16(bits));
    }
  }
}

void adamw_block_avx2(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, uint16_t* param_bf16,
                      int64_t begin, int64_t end, const AdamWScalars& s) {
  const __m256 beta2 = _mm256_set1_ps(s.beta2), omb1 = _mm256_set1_ps(s.one_minus_beta1),
               omb2 = _mm256_set1_ps(s.one_minus_beta2), eps = _mm256_set1_ps(s.eps),
               decay = _mm256_set1_ps(s.decay), step_size = _mm256_set1_ps(s.step_size),
               bc2 = _mm256_set1_ps(s.bias_correction2_sqrt), scale = _mm256_set1_ps(s.scale);
  const __m256i round_bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
  for (int64_t i = begin; i < end; i += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + i), scale);
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
    if (param_bf16) {
      const __m256i u = _mm256_castps_si256(p);
      const __m256i rounded = _mm256_srli_epi32(
          _mm256_add_epi32(u, _mm256_add_epi32(round_bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one))), 16);
      const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
      const __m256i bits = _mm256_blendv_epi8(rounded, nan, _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_UNORD_Q)));
      // packus keeps 128-bit lanes apart: [0-3, 0-3 | 4-7, 4-7]; gather quarters 0 and 2.
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(param_bf16 + i), _mm256_castsi256_si128(packed));
    }
  }
}

constexpr int64_t kTailWidth = 16;

AdamWBlock pick_block(int64_t& width) {
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  width = avx512 ? 16 : 8;
  return avx512 ? adamw_block_avx512 : adamw_block_avx2;
}

}  // namespace

void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, uint16_t* param_bf16) {
  const AdamWScalars s = adamw_scalars(p, grad_scale);
  int64_t width = 0;
  const AdamWBlock block = pick_block(width);
  const int64_t body = n / width * width;
  // Contiguous blocks per thread (streams the prefetchers follow); small buffers stay on one thread.
#pragma omp parallel if (body >= (int64_t(1) << 16))
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t vectors = body / width;
    const int64_t begin = vectors * t / threads * width, end = vectors * (t + 1) / threads * width;
    block(param, grad, exp_avg, exp_avg_sq, param_bf16, begin, end, s);
  }
  if (body == n) return;
  // The tail through the same vector code, on padded copies.
  alignas(64) float tp[kTailWidth] = {}, tg[kTailWidth] = {}, tm[kTailWidth] = {}, tv[kTailWidth] = {};
  alignas(64) uint16_t tb[kTailWidth] = {};
  const size_t rest = size_t(n - body);
  std::memcpy(tp, param + body, rest * sizeof(float));
  std::memcpy(tg, grad + body, rest * sizeof(float));
  std::memcpy(tm, exp_avg + body, rest * sizeof(float));
  std::memcpy(tv, exp_avg_sq + body, rest * sizeof(float));
  block(tp, tg, tm, tv, param_bf16 ? tb : nullptr, 0, width, s);
  std::memcpy(param + body, tp, rest * sizeof(float));
  std::memcpy(exp_avg + body, tm, rest * sizeof(float));
  std::memcpy(exp_avg_sq + body, tv, rest * sizeof(float));
  if (param_bf16) std::memcpy(param_bf16 + body, tb, rest * sizeof(uint16_t));
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
