// LayerNorm and RMSNorm over rows that are a whole number of 16-byte chunks, with each row's
// chunks held in registers: the forwards a warp per row (lane l holds chunks l, l + 32, ..., at
// most 8 a lane; norm_rows.cu), the backwards a group of warps per row, one chunk a lane, at most
// 384 chunks (norm_rows_backward.cu). Each returns false, launching nothing, for a shape it does
// not cover; norm.cu then runs its general kernels. Same arguments and arithmetic as the general
// kernels (statistics in f32). With a residual, the forwards normalize inp + residual (rounded to
// T) and write that sum to sum (which may be inp or residual); with dinp_add, the backwards write
// dinp + dinp_add (the sum rounded once). Letters: N rows, C channels.
#pragma once

#include <cstdint>

namespace zt::cuda {

template <class T>
bool layernorm_forward_rows(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias,
                            int64_t n, int64_t c, double eps, const T* residual = nullptr, T* sum = nullptr);
template <class T>
bool layernorm_backward_rows(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                             const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add = nullptr);
template <class T>
bool rmsnorm_forward_rows(T* out, float* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps,
                          const T* residual = nullptr, T* sum = nullptr);
template <class T>
bool rmsnorm_backward_rows(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                           int64_t n, int64_t c, const T* dinp_add = nullptr);

}  // namespace zt::cuda
