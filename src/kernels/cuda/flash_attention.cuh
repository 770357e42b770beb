// Tensor-core flash attention for bf16 (mma.sync m16n8k16, f32 accumulation), causal, with
// grouped key/value heads. Letters as in zt/kernels/ops.hpp; qkv rows are (NH + 2*NKV) * HD wide.
// The forward is flash_forward.cu (and for HD 64 on Hopper flash_forward_wgmma.cu), the backward
// flash_backward.cu (and for HD 64 on Hopper flash_backward_wgmma.cu; docs/CUDA_NOTES.md, v3, v6
// and v7).
#pragma once

#include <cstdint>

#include "cuda_ops.hpp"

namespace zt::cuda {

// Whether the kernels are built for this head size (they also want 16-byte aligned tensors).
bool flash_supports_head_size(int64_t hd);

// As set_flash_attention_tuning left it.
FlashAttentionTuning flash_attention_tuning();

// out (B, T, NH*HD), lse (B, NH, T) natural log-sum-exp of the scaled scores.
void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv,
                             int64_t hd);
// The same for HD 64 on wgmma: only where flash_wgmma_runs().
void flash_attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh,
                                   int64_t nkv);
// dqkv (B, T, (NH + 2*NKV) * HD) overwritten, from dout and the forward's out and lse; dsum
// (B, NH, T) scratch for D = rowsum(dout * out).
void flash_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);
// The same for HD 64 on wgmma (only where flash_wgmma_runs()): dQ accumulated across
// blocks in f32, so not bitwise repeatable; dK and dV are. With a rotary, dQ and dK are rotated
// back as they are written (from f32, rounded once) where dK comes out of registers: returns
// whether it did (not where split partials make dK; the caller rotates then).
bool flash_attention_backward_wgmma(bf16* dqkv, const bf16* dout, const bf16* out, const bf16* qkv, const float* lse,
                                    int64_t b, int64_t t, int64_t nh, int64_t nkv, RotaryGradient rotary = {});
// dqkv's key and value heads = the sum over splits of partial (splits, B, T, NKV, 2, HD), key then
// value, in split order.
void flash_add_dkv_partials(bf16* dqkv, const float* partial, int splits, int64_t b, int64_t t, int64_t nh,
                            int64_t nkv, int64_t hd);

}  // namespace zt::cuda
