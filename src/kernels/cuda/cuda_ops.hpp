// The CUDA kernels' launchers on raw device pointers, called by the op table's CUDA branch
// (src/kernels/ops_*.cpp). T is float or bf16 (bf16 storage, f32 arithmetic); statistics are
// float. Every launcher enqueues on the calling thread's compute stream and returns without
// waiting, unless it says that it returns a host value. Shapes use the letters of
// zt/kernels/ops.hpp.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <string>

#include "zt/core/cuda_stream.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::cuda {

using bf16 = __nv_bfloat16;

// Calls fn(float{}) or fn(bf16{}) by the dtype of a CUDA tensor, on its device.
template <class Fn>
void dispatch_float(const Tensor& t, const char* op, Fn&& fn) {
  set_device(t.device().index);
  switch (t.dtype()) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(bf16{}); return;
    default: ZT_THROW(op, ": the CUDA kernel takes f32 or bf16, got ", dtype_name(t.dtype()));
  }
}

// t's device pointer as T (the dtype was checked by the caller), or nullptr when undefined.
template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw()) : nullptr;
}

// ---- matmul (cuBLASLt) -----------------------------------------------------------------------
// residual (N, OC), when not null, is added to out: as the product's C input (beta 1) where out
// is neither padded nor GELU's, else by a separate pass.
template <class T>
void matmul_forward(T* out, T* pre_act, const T* inp, const T* weight, const T* bias, int64_t n, int64_t c,
                    int64_t oc, ops::WeightLayout layout, ops::Activation act, const T* residual = nullptr);
// dweight is added to, or with overwrite_dweight written by the product (beta 0: not read).
template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* pre_act,
                     int64_t n, int64_t c, int64_t oc, ops::WeightLayout layout, ops::Activation act,
                     const T* inp_pre_gelu = nullptr, bool overwrite_dweight = false);
// Whether the forward fuses GELU into cuBLASLt's epilogue (when the shapes allow); off runs a
// separate GELU kernel. For tests of both paths.
void set_matmul_gelu_epilogue(bool enabled);
// Which GELU products (the forward with GELU; the input gradient through the GELU that made inp)
// run on the own wgmma kernel (gemm_wgmma.hpp) where it takes them, instead of cuBLASLt's
// epilogues. ZT_MATMUL_OWN_GEMM = 0 | forward (the default: the one measured faster,
// docs/CUDA_NOTES.md v18) | 1 (both); the setter, for tests of each, returns the choice it replaces.
enum class OwnGemm { none, forward, both };
OwnGemm own_gemm_for(const std::string& value);  // throws naming the variable
OwnGemm set_matmul_own_gemm(OwnGemm products);
// What the backward queues on a side stream beside the input gradient's product: nothing, the
// bias gradient's column sums, or those and the weight gradient's product. ZT_MATMUL_SIDE_STREAM
// = off | bias (the default) | all; the setter, for tests of each, returns the choice it replaces.
enum class SideStreamWork { none, bias, weight_and_bias };
SideStreamWork side_stream_work_for(const std::string& value);  // throws naming the variable
SideStreamWork set_matmul_side_stream(SideStreamWork work);

// ---- normalization ---------------------------------------------------------------------------
// With a residual the forwards normalize sum = inp + residual and write sum (it may be inp or
// residual); with dinp_add the backwards write dinp + dinp_add (dinp is another buffer).
template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int64_t n,
                       int64_t c, double eps, const T* residual = nullptr, T* sum = nullptr);
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add = nullptr);
template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, int64_t n, int64_t c, double eps,
                     const T* residual = nullptr, T* sum = nullptr);
template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      int64_t n, int64_t c, const T* dinp_add = nullptr);

// ---- attention -------------------------------------------------------------------------------
// lse (B, NH, T): the natural log-sum-exp of each query row's scaled scores.
template <class T>
void attention_forward(T* out, float* lse, const T* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);
// The rotary embedding whose inverse a backward applies to the query and key heads' gradients
// (rope_apply's inv_freq (HD/2) and position offset); inv_freq null: none.
struct RotaryGradient {
  const float* inv_freq = nullptr;
  int64_t position_offset = 0;
};
// dqkv from dout and the forward's out (B, T, NH*HD) and lse: D = rowsum(dout * out); with a
// rotary, its query and key heads then rotated back (inside the wgmma backward's kernels, else by
// rope_apply after).
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, int64_t b, int64_t t,
                        int64_t nh, int64_t nkv, int64_t hd, RotaryGradient rotary = {});
// Which attention kernels run. automatic: our tensor-core flash forward, and for bf16 the
// backward as FlashAttentionTuning::backward chooses (ours on wgmma at HD 64 on Hopper, else
// cuDNN's fused one where the build has cuDNN and cuDNN has a plan for the shape; both sum dQ
// across blocks, so their bits may differ run to run), else our flash backward.
// flash: our tensor-core kernels only (bitwise repeatable). Either falls back to the simple
// warp-per-row kernels where the head size or alignment rules the tensor-core kernels out;
// simple: those everywhere. For tests and timings of each; until it is called, the environment
// variable ZT_ATTENTION_KERNELS (auto, the default; flash; simple) decides.
enum class AttentionKernels { automatic, flash, simple };
void set_attention_kernels(AttentionKernels kernels);
// Whether cuDNN's fused backward runs for bf16 at this shape: "" when it does, else why not
// (this build has no cuDNN, or cuDNN's own reason). Builds and caches the shape's plan.
std::string cudnn_attention_backward_support(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);
// The same for cuDNN's fused forward.
std::string cudnn_attention_forward_support(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd);
// Alternatives inside the tensor-core kernels (v3), for timing them against each other in one
// run; the tests check each. The defaults are what runs.
struct FlashAttentionTuning {
  // Query rows a forward block, HD 64: 128 (4 warps of two m-tiles) or 64 (one m-tile a warp,
  // fewer registers, more blocks a multiprocessor). 0: the default, 128.
  int forward_rows = 0;
  // HD 64 with the default rows: the mma.sync forward even where the wgmma one runs (sm_90a build
  // on a Hopper GPU), to time or test both.
  bool forward_mma_sync = false;
  // The wgmma forward's block, as 10 G + S: G warpgroups of 64 query rows, S stages of K and V
  // (22, 23 or 42). 0: the default, 22.
  int wgmma_forward_shape = 0;
  // The dK/dV kernel for HD 64 keeps K's and V's fragments in registers instead of reading them
  // from shared memory for every product (more registers: 2 blocks a multiprocessor, not 3). Off
  // by default: on an H200 the shared-memory form measured 4-7% faster (GPT-2 and Llama shapes).
  bool dkv_kv_in_registers = false;
  // Blocks sharing a key/value head's query heads in the dK/dV kernel (their f32 partials then
  // added in a fixed order), rounded down to a divisor of the group. 0: chosen by the size.
  int dkv_splits = 0;
  // HD 64 where flash_wgmma_runs(), the backward: on wgmma (flash_backward_wgmma.cu, one
  // key-side kernel with dQ added across blocks in f32; its splits follow dkv_splits), or cuDNN's
  // fused one (automatic kernels; the mma.sync kernels with flash kernels or where cuDNN has no
  // plan), or automatic: with automatic kernels, wgmma (on an H200, Llama 1.1B's shape 0.544 ms
  // against cuDNN's 0.598; GPT-2 124M's, one warpgroup a block in windows of heads, 0.274
  // against 0.295; docs/CUDA_NOTES.md v8, v14).
  enum class Backward { automatic, wgmma, cudnn };
  Backward backward = Backward::automatic;
  // The wgmma backward's block: 2 warpgroups over 128 keys sharing each staged query tile, one
  // block a multiprocessor, or 1 warpgroup over 64 keys, 2 blocks. 0: the default, 1 where each
  // key/value head has one query head (its blocks are short, and the windows keep its doubled dQ
  // reductions in L2), 2 for grouped heads (whose query tiles a block's 2 warpgroups share).
  int wgmma_backward_groups = 0;
  // The wgmma backward's block order: windows of this many key/value heads (times splits), each
  // handing out its blocks longest first, so that fewer heads' dQ accumulators are in use at once
  // (as wide as the grid or wider: the grid's own order, longest first throughout). 0: the
  // default, as many as 2 waves of resident blocks take (GPT-2 124M's shape: 33 of 192; Llama
  // 1.1B's: the whole grid).
  int wgmma_backward_window = 0;
  // The bf16 forward with automatic kernels: cuDNN's fused one where it has a plan for the shape
  // (cudnn; our kernels elsewhere) or ours (flash, and automatic: on an H200 the wgmma forward
  // took 0.093 / 0.184 ms at GPT-2 124M's / Llama 1.1B's shapes against cuDNN's 0.102 / 0.190;
  // docs/CUDA_NOTES.md v13).
  enum class Forward { automatic, flash, cudnn };
  Forward forward = Forward::automatic;
};
void set_flash_attention_tuning(const FlashAttentionTuning& tuning);
// The tuning until set_flash_attention_tuning is called: the defaults, with the HD 64 backward as
// ZT_ATTENTION_BACKWARD = `backward` says (auto or empty: the default kernel; wgmma; cudnn, or
// ours where cuDNN has no plan) and the bf16 forward as ZT_ATTENTION_FORWARD = `forward` says
// (auto or empty: the default; flash; cudnn), and the wgmma backward's window as
// ZT_ATTENTION_BACKWARD_WINDOW = `window` says (a count; empty: the default). Another value is an
// error naming it.
FlashAttentionTuning flash_attention_tuning_for(const std::string& backward, const std::string& forward = "auto",
                                                const std::string& window = "");
// Whether the build has the sm_90a kernels (wgmma) and the current device is a Hopper GPU to run
// them: then the HD 64 forward runs on them unless the tuning asks for mma.sync, and the HD 64
// backward where the tuning chooses it (backward).
bool flash_wgmma_runs();

template <class T>
void rope_apply(T* x, const float* inv_freq, int64_t b, int64_t t, int64_t n_heads, int64_t n_rotated, int64_t hd,
                int64_t position_offset, bool inverse);

// ---- activations -----------------------------------------------------------------------------
template <class T>
void gelu_forward(T* out, const T* inp, int64_t n);
template <class T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n);
template <class T>
void swiglu_forward(T* out, const T* gate_up, int64_t rows, int64_t hidden);  // out (rows, H), gate_up (rows, 2H)
template <class T>
void swiglu_backward(T* dgate_up, const T* dout, const T* gate_up, int64_t rows, int64_t hidden);  // may alias gate_up

// ---- embedding -------------------------------------------------------------------------------
// Rows whose id is outside [0, V) come out NaN (forward) or are skipped (backward): the ids are
// not read back to the host to be checked.
template <class T>
void embedding_forward(T* out, const int32_t* ids, const T* weight, int64_t n, int64_t v, int64_t c, bool accumulate);
template <class T>
void embedding_backward(T* dweight, const T* dout, const int32_t* ids, int64_t n, int64_t v, int64_t c);

// ---- cross-entropy ---------------------------------------------------------------------------
// losses (N) f32; dlogits (N, V) may be null or alias logits. A target outside [0, V) that is not
// the ignore index gives a NaN loss. Returns the count of rows not ignored, which waits for the
// stream; with count false it returns -1 and does not wait. dloss_at, when not null, is read by
// the kernel in place of dloss (f32 on the device).
template <class T>
int64_t cross_entropy(float* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                      double dloss, bool count = true, const float* dloss_at = nullptr);
// count_and_dloss (2) f32 = {targets (N) that are not the ignore index, grad_scale / that count}.
void count_targets(float* count_and_dloss, const int32_t* targets, int64_t n, double grad_scale);
// Mean of (pred - target)^2; dpred, when not null, gets dloss * 2 (pred - target) / numel. Waits.
template <class T>
double mse_loss(T* dpred, const T* pred, const T* target, int64_t n, double dloss);

// ---- optimizer -------------------------------------------------------------------------------
// queued_scale (optional, device memory) multiplies grad_scale when the kernel runs; where it is
// not finite the step writes nothing.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                const ops::AdamWParams& p, double grad_scale, const float* queued_scale = nullptr);
// The same with the gradient in grad_dtype (f32, bf16, f16; read as its exact f32 value) and, when
// param_out is given, the updated parameters also written there rounded to out_dtype (f32, bf16,
// f16) in the same pass.
void adamw_step_mixed(float* param, const void* grad, DType grad_dtype, float* exp_avg, float* exp_avg_sq, int64_t n,
                      const ops::AdamWParams& p, double grad_scale, void* param_out, DType out_dtype,
                      const float* queued_scale = nullptr);
struct AdamWPointers {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t n;
};
void adamw_step_many(const AdamWPointers* buffers, int64_t count, const ops::AdamWParams& p, double grad_scale);

// ---- elementwise and reductions --------------------------------------------------------------
void cast(void* out, DType out_dtype, const void* inp, DType inp_dtype, int64_t n);
template <class T>
void add(T* out, const T* a, const T* b, int64_t n);
template <class T>
void scale(T* x, double factor, int64_t n);
// x's elements [ranges[2r], ranges[2r + 1]) for r < count set to zero, in one launch (ranges on
// the device); element_size bytes an element.
void zero_ranges(void* x, size_t element_size, const int64_t* ranges, int64_t count);
double sum_squares(const void* x, DType dtype, int64_t n);  // waits
// *sum_of_squares = the same sum, queued (no wait).
void sum_squares_into(double* sum_of_squares, const void* x, DType dtype, int64_t n);
// *scale = clip_coefficient(sqrt(*sum_of_squares) / denominator, max_norm) / denominator, in f64
// as ops::clip_coefficient computes it, then rounded; NaN where the sum is not finite.
void clip_scale(float* scale, const double* sum_of_squares, double max_norm, double denominator);
bool all_finite(const void* x, DType dtype, int64_t n);     // waits
// Copies column block [col, col + width) of packed rows (N, packed_width) to or from part (N, width).
void copy_columns(void* packed, int64_t packed_width, void* part, int64_t width, int64_t col, int64_t n,
                  size_t element_size, bool to_packed);

}  // namespace zt::cuda
