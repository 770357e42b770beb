// Tensor-core flash attention for bf16 (mma.sync m16n8k16, f32 accumulation), causal, with
// grouped key/value heads. Letters as in zt/kernels/ops.hpp; qkv rows are (NH + 2*NKV) * HD wide.
// The forward is flash_forward.cu (and for HD 64 on Hopper flash_forward_wgmma.cu), the backward
// flash_backward.cu (docs/CUDA_NOTES.md, v3 and v6).
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
// The same for HD 64 on wgmma: only where flash_forward_wgmma_runs().
void flash_attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh,
                                   int64_t nkv);
// dqkv (B, T, (NH + 2*NKV) * HD) overwritten, from dout and the forward's out and lse; dsum
// (B, NH, T) scratch for D = rowsum(dout * out).
void flash_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);

}  // namespace zt::cuda
