// Causal attention with grouped key/value heads, flash style: the forward keeps only each query
// row's log-sum-exp, and the backward recomputes the probabilities. Two families of kernels:
// tensor-core kernels for bf16 with head sizes 64 and 128 (flash_attention.cu), and simple
// warp-per-row kernels for everything else (f32, other head sizes), which also serve as the
// check on the fast ones.
//
// Backward, both families: D_i = sum_j P_ij dP_ij = dO_i . O_i from the forward's output, then
// dQ in one pass over the keys of query row i; a separate kernel walks each key row's queries
// for dK and dV, so nothing is accumulated across blocks by atomics. By default the bf16
// backward at HD 64 on Hopper runs on wgmma instead (flash_backward_wgmma.cu, dQ accumulated
// across blocks in f32), and elsewhere on cuDNN's fused engines where they have a plan
// (cudnn_attention.cu, the same accumulation); AttentionKernels::flash keeps the repeatable
// kernels. FlashAttentionTuning::backward (ZT_ATTENTION_BACKWARD) picks either. cuDNN's fused forward
// runs where FlashAttentionTuning::forward (ZT_ATTENTION_FORWARD) asks for it; it writes the same
// out and log-sum-exp as ours.
#include <atomic>
#include <cmath>
#include <initializer_list>
#include <mutex>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "flash_attention.cuh"
#include "zt/core/env.hpp"
#if ZT_HAS_CUDNN
#include "cudnn_attention.hpp"
#endif

namespace zt::cuda {

namespace {

// An AttentionKernels set by set_attention_kernels, or -1: as ZT_ATTENTION_KERNELS says.
std::atomic<int> g_kernels{-1};

AttentionKernels attention_kernels() {
  if (const int set = g_kernels; set >= 0) return AttentionKernels(set);
  static const AttentionKernels from_environment = [] {
    const std::string v = env_string("ZT_ATTENTION_KERNELS", "auto");
    if (v == "auto" || v.empty()) return AttentionKernels::automatic;
    if (v == "flash") return AttentionKernels::flash;
    if (v == "simple") return AttentionKernels::simple;
    ZT_THROW("environment variable ZT_ATTENTION_KERNELS='", v, "' is not one of auto, flash, simple");
  }();
  return from_environment;
}

std::mutex g_tuning_mutex;
bool g_tuning_set = false;
FlashAttentionTuning g_tuning;

constexpr int kSimpleWarps = 4;  // query (or key) rows per block
constexpr int kMaxHeadChunks = 8;  // head size up to 32 * 8 = 256

struct Dims {
  int64_t t, nh, nkv, hd, width;  // width = (NH + 2*NKV) * HD, the qkv row
};

// out (B, T, NH*HD), lse (B, NH, T). A warp per query row: lanes split keys 32 at a time for the
// scores, then split the head dimensions to accumulate p * v.
template <class T>
__global__ void attention_forward_simple_kernel(T* out, float* lse, const T* qkv, Dims dm, float scale) {
  extern __shared__ float sq[];  // (warps, HD) the query rows, scaled
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const int64_t i = int64_t(blockIdx.x) * kSimpleWarps + warp;
  if (i >= dm.t) return;
  float* q = sq + warp * dm.hd;
  const T* row = qkv + (b * dm.t + i) * dm.width;
  for (int64_t d = lane; d < dm.hd; d += 32) q[d] = to_float(row[h * dm.hd + d]) * scale;
  __syncwarp();
  const T* keys = qkv + b * dm.t * dm.width + (dm.nh + kh) * dm.hd;
  const T* values = qkv + b * dm.t * dm.width + (dm.nh + dm.nkv + kh) * dm.hd;
  float o[kMaxHeadChunks] = {};
  float m = -INFINITY, l = 0;
  for (int64_t j0 = 0; j0 <= i; j0 += 32) {
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j <= i) {
      const T* k = keys + j * dm.width;
      s = 0;
      for (int64_t d = 0; d < dm.hd; ++d) s += q[d] * to_float(k[d]);
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float p = j <= i ? expf(s - m_new) : 0.0f;
    const float correction = expf(m - m_new);
    l = l * correction + warp_sum(p);
#pragma unroll
    for (int r = 0; r < kMaxHeadChunks; ++r) o[r] *= correction;
    const int64_t count = i - j0 + 1 < 32 ? i - j0 + 1 : 32;
    for (int64_t jj = 0; jj < count; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p, int(jj));
      const T* v = values + (j0 + jj) * dm.width;
#pragma unroll
      for (int r = 0; r < kMaxHeadChunks; ++r) {
        const int64_t d = lane + 32 * r;
        if (d < dm.hd) o[r] += pj * to_float(v[d]);
      }
    }
    m = m_new;
  }
  T* y = out + (b * dm.t + i) * dm.nh * dm.hd + h * dm.hd;
#pragma unroll
  for (int r = 0; r < kMaxHeadChunks; ++r) {
    const int64_t d = lane + 32 * r;
    if (d < dm.hd) y[d] = from_float<T>(o[r] / l);
  }
  if (lane == 0) lse[bh * dm.t + i] = m + logf(l);
}

// dQ of query row i and D_i = dO_i . O_i (B, NH, T), a warp per row.
template <class T>
__global__ void attention_backward_dq_simple_kernel(T* dqkv, float* dsum, const T* dout, const T* qkv, const T* out,
                                                    const float* lse, Dims dm, float scale) {
  extern __shared__ float shared[];  // (warps, 2, HD): q, dout
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const int64_t i = int64_t(blockIdx.x) * kSimpleWarps + warp;
  if (i >= dm.t) return;
  float* q = shared + warp * 2 * dm.hd;
  float* dy = q + dm.hd;
  const T* row = qkv + (b * dm.t + i) * dm.width + h * dm.hd;
  const T* dyrow = dout + (b * dm.t + i) * dm.nh * dm.hd + h * dm.hd;
  const T* orow = out + (b * dm.t + i) * dm.nh * dm.hd + h * dm.hd;
  float dsum_part = 0;
  for (int64_t d = lane; d < dm.hd; d += 32) {
    q[d] = to_float(row[d]) * scale, dy[d] = to_float(dyrow[d]);
    dsum_part += dy[d] * to_float(orow[d]);
  }
  const float di = warp_sum(dsum_part);
  __syncwarp();
  const T* keys = qkv + b * dm.t * dm.width + (dm.nh + kh) * dm.hd;
  const T* values = qkv + b * dm.t * dm.width + (dm.nh + dm.nkv + kh) * dm.hd;
  const float row_lse = lse[bh * dm.t + i];
  auto p_and_dp = [&](int64_t j, float& p, float& dp) {
    const T* k = keys + j * dm.width;
    const T* v = values + j * dm.width;
    float s = 0;
    dp = 0;
    for (int64_t d = 0; d < dm.hd; ++d) s += q[d] * to_float(k[d]), dp += dy[d] * to_float(v[d]);
    p = expf(s - row_lse);
  };
  float dq[kMaxHeadChunks] = {};
  for (int64_t j0 = 0; j0 <= i; j0 += 32) {
    const int64_t j = j0 + lane;
    float ds = 0;
    if (j <= i) {
      float p, dp;
      p_and_dp(j, p, dp);
      ds = p * (dp - di);
    }
    const int64_t count = i - j0 + 1 < 32 ? i - j0 + 1 : 32;
    for (int64_t jj = 0; jj < count; ++jj) {
      const float dsj = __shfl_sync(0xffffffffu, ds, int(jj));
      const T* k = keys + (j0 + jj) * dm.width;
#pragma unroll
      for (int r = 0; r < kMaxHeadChunks; ++r) {
        const int64_t d = lane + 32 * r;
        if (d < dm.hd) dq[r] += dsj * to_float(k[d]);
      }
    }
  }
  T* dqrow = dqkv + (b * dm.t + i) * dm.width + h * dm.hd;
#pragma unroll
  for (int r = 0; r < kMaxHeadChunks; ++r) {
    const int64_t d = lane + 32 * r;
    if (d < dm.hd) dqrow[d] = from_float<T>(dq[r] * scale);
  }
  if (lane == 0) dsum[bh * dm.t + i] = di;
}

// dK and dV of key row j of key/value head kh, over every query head of its group; a warp per row.
template <class T>
__global__ void attention_backward_dkv_simple_kernel(T* dqkv, const T* dout, const T* qkv, const float* lse,
                                                     const float* dsum, Dims dm, float scale) {
  extern __shared__ float shared[];  // (warps, 2, HD): k, v
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t bk = blockIdx.y, b = bk / dm.nkv, kh = bk % dm.nkv, group = dm.nh / dm.nkv;
  const int64_t j = int64_t(blockIdx.x) * kSimpleWarps + warp;
  if (j >= dm.t) return;
  float* k = shared + warp * 2 * dm.hd;
  float* v = k + dm.hd;
  const T* base = qkv + b * dm.t * dm.width;
  for (int64_t d = lane; d < dm.hd; d += 32) {
    k[d] = to_float(base[j * dm.width + (dm.nh + kh) * dm.hd + d]);
    v[d] = to_float(base[j * dm.width + (dm.nh + dm.nkv + kh) * dm.hd + d]);
  }
  __syncwarp();
  float dk[kMaxHeadChunks] = {}, dv[kMaxHeadChunks] = {};
  for (int64_t g = 0; g < group; ++g) {
    const int64_t h = kh * group + g, bh = b * dm.nh + h;
    for (int64_t i0 = j; i0 < dm.t; i0 += 32) {
      const int64_t i = i0 + lane;
      float p = 0, ds = 0;
      if (i < dm.t) {
        const T* q = base + i * dm.width + h * dm.hd;
        const T* dy = dout + (b * dm.t + i) * dm.nh * dm.hd + h * dm.hd;
        float s = 0, dp = 0;
        for (int64_t d = 0; d < dm.hd; ++d) s += to_float(q[d]) * k[d], dp += to_float(dy[d]) * v[d];
        p = expf(s * scale - lse[bh * dm.t + i]);
        ds = p * (dp - dsum[bh * dm.t + i]);
      }
      const int64_t count = dm.t - i0 < 32 ? dm.t - i0 : 32;
      for (int64_t ii = 0; ii < count; ++ii) {
        const float pi = __shfl_sync(0xffffffffu, p, int(ii)), dsi = __shfl_sync(0xffffffffu, ds, int(ii));
        const T* q = base + (i0 + ii) * dm.width + h * dm.hd;
        const T* dy = dout + (b * dm.t + i0 + ii) * dm.nh * dm.hd + h * dm.hd;
#pragma unroll
        for (int r = 0; r < kMaxHeadChunks; ++r) {
          const int64_t d = lane + 32 * r;
          if (d < dm.hd) dv[r] += pi * to_float(dy[d]), dk[r] += dsi * to_float(q[d]);
        }
      }
    }
  }
  T* out = dqkv + (b * dm.t + j) * dm.width;
#pragma unroll
  for (int r = 0; r < kMaxHeadChunks; ++r) {
    const int64_t d = lane + 32 * r;
    if (d < dm.hd) {
      out[(dm.nh + kh) * dm.hd + d] = from_float<T>(dk[r] * scale);
      out[(dm.nh + dm.nkv + kh) * dm.hd + d] = from_float<T>(dv[r]);
    }
  }
}

// Whether the tensor-core kernels take these tensors.
bool use_flash(int64_t hd, std::initializer_list<const void*> tensors) {
  if (attention_kernels() == AttentionKernels::simple || !flash_supports_head_size(hd)) return false;
  for (const void* p : tensors)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace

void set_attention_kernels(AttentionKernels kernels) { g_kernels = int(kernels); }

std::string cudnn_attention_backward_support(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
#if ZT_HAS_CUDNN
  return cudnn_attention_backward_plan(b, t, nh, nkv, hd);
#else
  return "this build of zt has no cuDNN";
#endif
}

std::string cudnn_attention_forward_support(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
#if ZT_HAS_CUDNN
  return cudnn_attention_forward_plan(b, t, nh, nkv, hd);
#else
  return "this build of zt has no cuDNN";
#endif
}

FlashAttentionTuning flash_attention_tuning_for(const std::string& backward, const std::string& forward,
                                                const std::string& window) {
  FlashAttentionTuning tuning;
  if (!window.empty()) {
    const bool digits = window.size() <= 4 && window.find_first_not_of("0123456789") == std::string::npos;
    if (!digits)
      ZT_THROW("environment variable ZT_ATTENTION_BACKWARD_WINDOW='", window,
               "' is not a count of key/value heads from 0 to 9999 (0: the default, 2 waves of blocks a "
               "window; at least the grid's width: its own order)");
    tuning.wgmma_backward_window = std::stoi(window);
  }
  if (backward == "wgmma") tuning.backward = FlashAttentionTuning::Backward::wgmma;
  else if (backward == "cudnn") tuning.backward = FlashAttentionTuning::Backward::cudnn;
  else if (backward != "auto" && !backward.empty())
    ZT_THROW("environment variable ZT_ATTENTION_BACKWARD='", backward, "' is not one of auto, wgmma, cudnn");
  if (forward == "flash") tuning.forward = FlashAttentionTuning::Forward::flash;
  else if (forward == "cudnn") tuning.forward = FlashAttentionTuning::Forward::cudnn;
  else if (forward != "auto" && !forward.empty())
    ZT_THROW("environment variable ZT_ATTENTION_FORWARD='", forward, "' is not one of auto, flash, cudnn");
  return tuning;
}

void set_flash_attention_tuning(const FlashAttentionTuning& tuning) {
  std::lock_guard<std::mutex> lock(g_tuning_mutex);
  g_tuning = tuning, g_tuning_set = true;
}

FlashAttentionTuning flash_attention_tuning() {
  std::lock_guard<std::mutex> lock(g_tuning_mutex);
  if (!g_tuning_set) {
    g_tuning = flash_attention_tuning_for(env_string("ZT_ATTENTION_BACKWARD", "auto"),
                                          env_string("ZT_ATTENTION_FORWARD", "auto"),
                                          env_string("ZT_ATTENTION_BACKWARD_WINDOW", ""));
    g_tuning_set = true;
  }
  return g_tuning;
}

template <class T>
void attention_forward(T* out, float* lse, const T* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  if (b == 0 || t == 0) return;
  ZT_CHECK(hd <= 32 * kMaxHeadChunks, "attention_forward: head size ", hd, " is over the CUDA kernels' ",
           32 * kMaxHeadChunks);
  if constexpr (std::is_same_v<T, bf16>) {
#if ZT_HAS_CUDNN
    // cuDNN's fused forward where chosen and it has a plan for the shape; ours otherwise.
    if (flash_attention_tuning().forward == FlashAttentionTuning::Forward::cudnn &&
        attention_kernels() == AttentionKernels::automatic && use_flash(hd, {qkv, out}) &&
        cudnn_attention_forward(out, lse, qkv, b, t, nh, nkv, hd))
      return;
#endif
    if (use_flash(hd, {qkv, out})) return flash_attention_forward(out, lse, qkv, b, t, nh, nkv, hd);
  }
  const Dims dm{t, nh, nkv, hd, (nh + 2 * nkv) * hd};
  const dim3 grid(unsigned((t + kSimpleWarps - 1) / kSimpleWarps), unsigned(b * nh));
  attention_forward_simple_kernel<<<grid, 32 * kSimpleWarps, kSimpleWarps * hd * sizeof(float), compute_stream()>>>(
      out, lse, qkv, dm, float(1.0 / std::sqrt(double(hd))));
  ZT_CUDA_CHECK_LAUNCH("attention_forward_simple_kernel");
}

namespace {

// The backward's kernels, as chosen: the wgmma one (which takes the rotation where it can),
// cuDNN's, our flash kernels or the simple ones. Returns whether they rotated dQ and dK back.
template <class T>
bool attention_backward_kernels(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int64_t b,
                                int64_t t, int64_t nh, int64_t nkv, int64_t hd, RotaryGradient rotary) {
  if constexpr (std::is_same_v<T, bf16>) {
    // The tuning first: a wrong ZT_ATTENTION_BACKWARD fails at the first bf16 backward.
    using Backward = FlashAttentionTuning::Backward;
    const Backward choice = flash_attention_tuning().backward;
    const bool wgmma = choice == Backward::wgmma ||
                       (choice == Backward::automatic && attention_kernels() == AttentionKernels::automatic);
    if (wgmma && hd == 64 && flash_wgmma_runs() && use_flash(hd, {dqkv, dout, qkv, out}))
      return flash_attention_backward_wgmma(dqkv, dout, out, qkv, lse, b, t, nh, nkv, rotary);
  }
  Scratch dsum(size_t(b * nh * t) * sizeof(float));  // D (B, NH, T)
  if constexpr (std::is_same_v<T, bf16>) {
#if ZT_HAS_CUDNN
    // cuDNN's fused backward where it has a plan for the shape; ours otherwise.
    if (attention_kernels() == AttentionKernels::automatic && use_flash(hd, {dqkv, dout, qkv, out}) &&
        cudnn_attention_backward(dqkv, dsum.as<float>(), dout, out, qkv, lse, b, t, nh, nkv, hd))
      return false;
#endif
    if (use_flash(hd, {dqkv, dout, qkv, out})) {
      flash_attention_backward(dqkv, dsum.as<float>(), dout, out, qkv, lse, b, t, nh, nkv, hd);
      return false;
    }
  }
  const Dims dm{t, nh, nkv, hd, (nh + 2 * nkv) * hd};
  const float scale = float(1.0 / std::sqrt(double(hd)));
  const size_t shared = kSimpleWarps * 2 * hd * sizeof(float);
  const unsigned row_blocks = unsigned((t + kSimpleWarps - 1) / kSimpleWarps);
  attention_backward_dq_simple_kernel<<<dim3(row_blocks, unsigned(b * nh)), 32 * kSimpleWarps, shared,
                                        compute_stream()>>>(dqkv, dsum.as<float>(), dout, qkv, out, lse, dm, scale);
  ZT_CUDA_CHECK_LAUNCH("attention_backward_dq_simple_kernel");
  attention_backward_dkv_simple_kernel<<<dim3(row_blocks, unsigned(b * nkv)), 32 * kSimpleWarps, shared,
                                         compute_stream()>>>(dqkv, dout, qkv, lse, dsum.as<float>(), dm, scale);
  ZT_CUDA_CHECK_LAUNCH("attention_backward_dkv_simple_kernel");
  return false;
}

}  // namespace

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int64_t b, int64_t t,
                        int64_t nh, int64_t nkv, int64_t hd, RotaryGradient rotary) {
  if (b == 0 || t == 0) return;
  ZT_CHECK(hd <= 32 * kMaxHeadChunks, "attention_backward: head size ", hd, " is over the CUDA kernels' ",
           32 * kMaxHeadChunks);
  const bool rotated = attention_backward_kernels(dqkv, dout, qkv, out, lse, b, t, nh, nkv, hd, rotary);
  if (rotary.inv_freq && !rotated)
    rope_apply(dqkv, rotary.inv_freq, b, t, nh + 2 * nkv, nh + nkv, hd, rotary.position_offset, true);
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_forward<bf16>(bf16*, float*, const bf16*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, RotaryGradient);
template void attention_backward<bf16>(bf16*, const bf16*, const bf16*, const bf16*, const float*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, RotaryGradient);

}  // namespace zt::cuda
