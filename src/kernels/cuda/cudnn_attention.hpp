// Causal attention forward and backward on cuDNN's fused flash-attention engines, through the
// backend graph API: an operation graph per direction and shape, built once, with the tensors as
// strided views of the same qkv, out, lse and dqkv buffers our own kernels use (no copies),
// grouped key/value heads native. Compiled only where the build found cuDNN (ZT_HAS_CUDNN); the
// dispatch in attention.cu falls back to our kernels wherever this has no plan.
// Letters: B batch, T sequence, NH query heads, NKV key/value heads, HD head size.
#pragma once

#include <cstdint>
#include <string>

#include "cuda_ops.hpp"

namespace zt::cuda {

// "" when cuDNN has an execution plan for the forward at this shape on the current device (built
// and cached on the first call for the shape), else why not, in cuDNN's words where it gave some.
std::string cudnn_attention_forward_plan(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);

// The same for the backward.
std::string cudnn_attention_backward_plan(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);

// out (B, T, NH*HD) and lse (B, NH, T), the natural log-sum-exp of each row's scaled causal
// scores, from qkv (B, T, (NH + 2*NKV) * HD): what our forward kernels write, so either
// backward reads them. On the compute stream. Returns false, touching nothing, where there is
// no plan (cudnn_attention_forward_plan says why) or a pointer is not 16-byte aligned; throws
// when cuDNN fails to run a plan it accepted.
bool cudnn_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv,
                             int64_t hd);

// dqkv (B, T, (NH + 2*NKV) * HD) overwritten from dout and the forward's out (B, T, NH*HD) and
// lse (B, NH, T); dsum (B, NH, T) receives D = rowsum(dout * out). On the compute stream. Returns
// false, touching nothing, where there is no plan (cudnn_attention_backward_plan says why) or a
// pointer is not 16-byte aligned; throws when cuDNN fails to run a plan it accepted.
bool cudnn_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);

}  // namespace zt::cuda
