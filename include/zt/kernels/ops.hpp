// The op table: every compute primitive the layers above call, on Tensors, dispatched by device
// and dtype. The CPU versions (src/kernels/cpu, f32 and f64) are the reference that every other
// backend is checked against; backward ops are checked against finite differences in f64.
//
// Conventions, for every op:
//   - outputs are allocated by the caller and passed in (so the ZeRO layer decides where memory lives);
//   - backward ops OVERWRITE input gradients (dinp, dx...) and ACCUMULATE (+=) into parameter
//     gradients (dweight, dbias), so that micro-batches accumulate without extra buffers;
//   - an undefined Tensor for an optional output means "do not compute it";
//   - statistics an op saves or returns (norm mean/rstd, attention's saved state, per-row losses)
//     and rotary frequencies have dtype stats_dtype(input dtype): f32 for bf16/f16 inputs (fp32
//     accumulation), the input dtype otherwise;
//   - on CUDA, ops run on the calling thread's compute stream (zt/core/cuda_stream.hpp) with no
//     host synchronization, except the few that return a host value (the cross-entropy count,
//     mse_loss, sum_squares, all_finite), which wait for it (sum_squares_into is sum_squares
//     without the wait).
//
// Letters used in shapes: N rows (B*T), B batch, T sequence, C channels, OC output channels,
// V vocabulary, NH query heads, NKV key/value heads, HD head size, H hidden (MLP) size.
#pragma once

#include "zt/core/tensor.hpp"

namespace zt::ops {

enum class Activation { none, gelu_tanh };
// How a weight is stored: torch nn.Linear keeps (OC, C); Hugging Face's GPT-2 Conv1D keeps (C, OC).
enum class WeightLayout { out_in, in_out };

// The dtype of the statistics kept for inputs of dtype (see the conventions above).
DType stats_dtype(DType input);

// ---- matmul with fused epilogue -------------------------------------------------------------
// out (N, OC) = act(inp (N, C) @ W + bias (OC)), W as weight_layout says. When act != none,
// pre_act (N, OC) receives the value before the activation (needed by the backward).
// residual (N, OC), when defined, is added to out (out = residual + act(...)): on a GPU inside the
// product's epilogue where it can be (no pass over out of its own).
void matmul_forward(const Tensor& out, const Tensor& pre_act, const Tensor& inp, const Tensor& weight,
                    const Tensor& bias, WeightLayout layout, Activation act, const Tensor& residual = Tensor());
// How a backward puts a parameter's gradient into its buffer: added to what is there, or written
// over it (the window's first gradient: the buffer is neither cleared before nor read).
enum class GradInto { add, overwrite };
// dout (N, OC) is dLoss/dout; pre_act as saved by the forward (when act != none).
// dinp (N, C) is overwritten; dweight (W's shape) is accumulated (or overwritten, by
// dweight_into) and dbias (OC) accumulated.
// When inp was itself made by an activation, inp = inp_act(inp_pre_act (N, C)), dinp can receive
// the gradient of inp_pre_act instead, the activation's backward fused into the product (the
// MLP's c_proj does this for c_fc's GELU, which then takes its gradient as is).
void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                     const Tensor& inp, const Tensor& weight, const Tensor& pre_act, WeightLayout layout,
                     Activation act, Activation inp_act = Activation::none, const Tensor& inp_pre_act = Tensor(),
                     GradInto dweight_into = GradInto::add);

// ---- normalization --------------------------------------------------------------------------
// out (N, C) = (inp - mean) * rstd * weight (C) + bias (C); mean, rstd (N) saved for backward.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, double eps);
// With dinp_add, dinp receives the norm's input gradient plus dinp_add: the gradient that reaches
// the same input another way (the residual stream around a pre-norm block), added in the same
// pass. dinp must not be dout, inp or dinp_add.
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                        const Tensor& inp, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dinp_add = Tensor());
// out (N, C) = inp * rstd * weight (C), rstd = 1/sqrt(mean(inp^2) + eps) saved (N).
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight, double eps);
void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight, const Tensor& rstd, const Tensor& dinp_add = Tensor());
// The residual add fused in front of the norm: sum (N, C) = inp + residual (rounded to their
// dtype as ops::add rounds it) is written, then normalized as above. sum may be inp or residual.
void layernorm_forward_residual(const Tensor& sum, const Tensor& out, const Tensor& mean, const Tensor& rstd,
                                const Tensor& inp, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                                double eps);
void rmsnorm_forward_residual(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& inp,
                              const Tensor& residual, const Tensor& weight, double eps);

// ---- attention ------------------------------------------------------------------------------
// qkv (B, T, (NH + 2*NKV) * HD): per token, NH query heads, then NKV key heads, then NKV value
// heads. Causal softmax(q k^T / sqrt(HD)) v; query head h reads key/value head h / (NH / NKV).
// out (B, T, NH * HD). att holds what the backward needs, in the backend's own form: the
// probabilities (B, NH, T, T) on the CPU; a flash-attention backend keeps only the row
// log-sum-exp (B, NH, T) and recomputes. attention_saved_shape says which, for a device; att's
// dtype is stats_dtype(qkv dtype).
Shape attention_saved_shape(Device device, int64_t batch, int64_t n_head, int64_t seq_len);
void attention_forward(const Tensor& out, const Tensor& att, const Tensor& qkv, int64_t n_head, int64_t n_kv_head);
// dqkv (B, T, (NH + 2*NKV) * HD) overwritten, from dout and the forward's out and att (as the
// forward left them: the backward forms D_i = sum_j P_ij dP_ij = dout_i . out_i from out, which
// saves a flash backward a pass over the keys).
// With rotary: qkv's query and key heads were rotated by rope_forward(qkv, *rotary), and their
// gradients come back through the inverse rotation, as rope_backward after the plain backward
// would give them (the wgmma backward does it inside its kernels, so dqkv is written once).
struct RotaryPositions {
  const Tensor& inv_freq;  // (HD/2), stats_dtype(qkv's dtype), on qkv's device
  int64_t position_offset;
};
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& out,
                        const Tensor& att, int64_t n_head, int64_t n_kv_head,
                        const RotaryPositions* rotary = nullptr);

// Rotary position embedding, rotate-half form (Hugging Face Llama), in place on the first
// n_rotated heads of each token of x (B, T, heads, HD): in packed qkv these are the query and key
// heads. Position of token t is position_offset + t; inv_freq (HD/2) = theta^(-2i/HD).
void rope_forward(const Tensor& x, const Tensor& inv_freq, int64_t n_rotated_heads, int64_t position_offset);
// The inverse rotation, in place on the gradient dx (same layout).
void rope_backward(const Tensor& dx, const Tensor& inv_freq, int64_t n_rotated_heads, int64_t position_offset);

// ---- activations ----------------------------------------------------------------------------
// GELU, tanh approximation (Hugging Face "gelu_new" / torch approximate="tanh"). Any shape.
void gelu_forward(const Tensor& out, const Tensor& inp);
void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);
// out (..., H) = silu(gate) * up, where gate_up (..., 2H) holds each row's gate then its up (the
// output of the gate and up projections computed as one product).
void swiglu_forward(const Tensor& out, const Tensor& gate_up);
// dgate_up (..., 2H): each row's dgate then dup, from dout (..., H). dgate_up may be gate_up
// itself (in place).
void swiglu_backward(const Tensor& dgate_up, const Tensor& dout, const Tensor& gate_up);

// ---- embedding ------------------------------------------------------------------------------
// out (N, C) = weight (V, C)[ids (N) i32], or += when accumulate. An id outside [0, V) is an error.
void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& weight, bool accumulate);
// dweight (V, C) += scatter of dout (N, C) by ids.
void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids);

// ---- cross-entropy --------------------------------------------------------------------------
// losses (N) = logsumexp(logits[n]) - logits[n, targets[n]]; 0 where targets[n] == ignore_index (-100).
// Returns the number of rows not ignored.
int64_t cross_entropy_forward(const Tensor& losses, const Tensor& logits, const Tensor& targets);
// Fused forward and backward: losses as above and dlogits (N, V) = (softmax - onehot) * dloss,
// zero rows where ignored. dlogits may be the logits tensor itself (overwritten in place).
// Returns the number of rows not ignored (on a GPU this waits for the kernel).
int64_t cross_entropy_fused(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                            const Tensor& targets, double dloss);
constexpr int32_t kIgnoreIndex = -100;
// The same fused op with the count made where the targets are: count_and_dloss (2) f32 on the
// logits' device receives {the targets that are not ignored, grad_scale / that count (0 when
// none is)}, and the gradient's kernel reads that dloss when it runs. On a GPU nothing waits for
// the host and no host value depends on the batch (a CUDA graph can replay it).
void cross_entropy_fused_counting(const Tensor& losses, const Tensor& dlogits, const Tensor& logits,
                                  const Tensor& targets, double grad_scale, const Tensor& count_and_dloss);

// Mean squared error over all elements of pred and target (same shape); when dpred is defined
// it receives dloss * d(mean)/d(pred). Returns the mean.
double mse_loss(const Tensor& dpred, const Tensor& pred, const Tensor& target, double dloss);

// ---- optimizer ------------------------------------------------------------------------------
struct AdamWParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;  // 1-based, after incrementing: the bias corrections use it
};
// PyTorch's AdamW on flat f32 buffers of equal length: decoupled weight decay, bias correction.
// grad_scale multiplies the gradient first (unscaling and clipping in one pass). The gradient may
// also be bf16 or f16 (widened in the pass: the result is that of its f32 value), and param_out,
// when given (on param's device, f32, bf16 or f16, param's length), receives the updated
// parameters rounded to its dtype in the same pass (mixed precision's cast of the master weights
// into the parameters; an offloaded optimizer's upload tile). queued_scale, when given, is an f32
// (1) in param's device memory that also multiplies the gradient, read when the step runs (so
// that work queued before it, as clip_scale, may compute it); where it is not finite the step
// writes nothing: parameters, moments and param_out stay as they were.
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWParams& p, double grad_scale = 1.0, const Tensor& param_out = Tensor(),
                const Tensor& queued_scale = Tensor());
// The same step over many buffers in one pass (on CUDA, one launch per 64 buffers): each entry's
// four tensors are f32 of one length, all entries on one device.
struct AdamWBuffers {
  Tensor param, grad, exp_avg, exp_avg_sq;
};
void adamw_step_many(const std::vector<AdamWBuffers>& buffers, const AdamWParams& p, double grad_scale = 1.0);

// ---- elementwise and reductions -------------------------------------------------------------
void cast(const Tensor& out, const Tensor& inp);  // any of f32, f64, bf16, f16; same numel
// Column blocks: packed (N, W) from parts (N, w_i), sum of w_i = W, in order; and back.
void pack_columns(const Tensor& packed, const std::vector<Tensor>& parts);
void unpack_columns(const std::vector<Tensor>& parts, const Tensor& packed);
void add(const Tensor& out, const Tensor& a, const Tensor& b);  // out may alias a or b
void add_(const Tensor& acc, const Tensor& x);                  // acc += x
void scale_(const Tensor& x, double factor);
// x's elements [begin, end) of each row of ranges (R, 2) set to zero: many small slices of one
// buffer in one pass. ranges: i64, on x's device (made once by the caller).
void zero_ranges(const Tensor& x, const Tensor& ranges);
double sum_squares(const Tensor& x);  // accumulated in f64
// The same sum written into sum_of_squares, f64 (1) on x's device, without waiting for it.
void sum_squares_into(const Tensor& sum_of_squares, const Tensor& x);
// PyTorch's clip_grad_norm_ coefficient: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0.
double clip_coefficient(double global_norm, double max_norm);
// The gradient clipping factor from a queued sum of squares: scale, f32 (1) on its device, =
// clip_coefficient(sqrt(sum) / denominator, max_norm) / denominator (so that the optimizer's
// grad_scale unscales and clips at once), NaN where the sum is not finite. Nothing waits.
void clip_scale(const Tensor& scale, const Tensor& sum_of_squares, double max_norm, double denominator);
bool all_finite(const Tensor& x);

}  // namespace zt::ops
