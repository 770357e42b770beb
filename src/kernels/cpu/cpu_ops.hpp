// The CPU reference kernels on raw pointers, templated on the element type (float for training,
// double for the finite-difference checks). Shapes use the letters defined in zt/kernels/ops.hpp.
// Threaded with OpenMP; BLAS calls inside a parallel region run single-threaded.
#pragma once

#include <cstdint>

#include "zt/kernels/ops.hpp"

namespace zt::cpu {

// C (M, N) = alpha * op(A) op(B) + beta * C, row-major, with leading dimensions.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// y (N) = alpha * A^T x + beta * y for row-major A (M, N) with leading dimension lda, x (M).
template <class T>
void gemv_transposed(int64_t m, int64_t n, T alpha, const T* a, int64_t lda, const T* x, T beta, T* y);

template <class T>
void matmul_forward(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n, int64_t c,
                    int64_t oc, ops::WeightLayout layout, ops::Activation act);
template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     const T* pre_act, int64_t n, int64_t c, int64_t oc, ops::WeightLayout layout,
                     ops::Activation act);

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias, int64_t n,
                       int64_t c, double eps);
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int64_t n, int64_t c);
template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps);
template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      int64_t n, int64_t c);

template <class T>
void attention_forward(T* out, T* att, const T* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);
// D_i = rowsum(P * dP)_i is formed as dout_i . out_i from the forward's output.
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* att, int64_t b, int64_t t,
                        int64_t nh, int64_t nkv, int64_t hd);

template <class T>
void rope_apply(T* x, const T* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse);

template <class T>
void gelu_forward(T* out, const T* inp, int64_t n);
template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n);
template <class T>
void swiglu_forward(T* out, const T* gate_up, int64_t rows, int64_t hidden);  // out (rows, H), gate_up (rows, 2H)
template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t rows, int64_t hidden);

template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* weight, int64_t n, int64_t v, int64_t c, bool accumulate);
template <class T>
void embedding_backward(T* dweight, const T* dout, const int32_t* ids, int64_t n, int64_t v, int64_t c);

template <class T>
int64_t cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                      double dloss);

// The vectorized step (AVX-512 or AVX2, OpenMP). grad (n) is grad_dtype (f32, bf16 or f16);
// param_out (n), when given, receives the updated parameters rounded to out_dtype (f32, bf16 or
// f16) in the same pass. adamw_step_reference is the plain loop it follows.
void adamw_step(float* param, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, void* param_out, DType out_dtype);
// f32 gradients; param_bf16 (n), when given, receives the parameters rounded to bf16.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, uint16_t* param_bf16 = nullptr);
// Tests: run the AVX2 form even where AVX-512 is present (returns the previous setting).
bool adamw_force_avx2(bool force);
void adamw_step_reference(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                          const ops::AdamWParams& p, double grad_scale);

}  // namespace zt::cpu
