// Causal attention forward and backward as cuDNN operation graphs, in the composite forms that
// cuDNN's fused flash-attention engines recognize (the engines match the whole graph, then run it
// as one kernel family; nothing of the graph is materialized). The forward is described at
// build_forward_graph; the backward:
//
//   D     = rowsum(dO * O) * 1                         -> softmax_sum (B, NH, T, 1), our dsum
//   S     = scale * Q K^T, causal mask (j <= i kept)   (B, NH, T, T) virtual
//   P     = exp(S - lse)
//   dV    = P^T dO          (GQA: over NH heads, then summed per group by a reduction)
//   dS    = scale * P * (dO V^T - D)
//   dK    = dS^T Q          (GQA: as dV)
//   dQ    = dS K  into a f32 accumulator (the dQ_accum tensor), then copied to bf16
//
// The mask is row >= column from two index generators, selecting the lowest float elsewhere. On
// cuDNN 9.15 and older a key length that is not a multiple of 128 also needs an explicit padding
// mask (with per-batch lengths, all T) to be computed right. Each graph has two forms (the
// backward: the causal mask after the subtraction of lse, as recent graphs put it, or before it;
// the forward: the probabilities in f32 or bf16); the first that some engine takes is kept.
// Letters as in cudnn_attention.hpp; W = (NH + 2*NKV)*HD, the qkv row.
#include "cudnn_attention.hpp"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "common.cuh"
#include "cudnn_graph.hpp"
#include "zt/core/log.hpp"

namespace zt::cuda {

namespace {

using cudnn::CudnnFailure;
using cudnn::Descriptor;
using cudnn::Dims;
using cudnn::GraphBuilder;

// ---- the graphs ------------------------------------------------------------------------------

// Unique ids of the tensors in memory: the variant pack's entries.
enum Uid : int64_t {
  kQ = 1, kKT, kVT, kV, kO, kDO, kStats, kDQ, kDK, kDV,  // views of qkv, out, dout, lse, dqkv
  kScale, kOne, kLowest,                                // scalars passed by value
  kSoftmaxSum, kDQAccum,                                // dsum and f32 workspace
  kSeqQ, kSeqKV,                                        // (B, 1, 1, 1) lengths for the padding mask
};

enum class Direction { forward, backward };

// Where the backward's causal mask goes (both are tried; the first an engine takes is kept).
enum class MaskPlacement { after_stats, before_stats };

struct Shape {
  int64_t b, t, nh, nkv, hd;
};

// where: mask kept where mask(y, x) holds, else the lowest float.
int64_t select_or_lowest(GraphBuilder& g, int64_t s, int64_t mask) {
  const int64_t y = g.like(s, CUDNN_DATA_FLOAT);
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, kLowest, mask, y);
  return y;
}

int64_t index_of(GraphBuilder& g, int64_t s, int64_t axis, cudnnDataType_t precision) {
  const int64_t y = g.like(s, CUDNN_DATA_INT32);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, precision, s, -1, -1, y, axis);
  return y;
}

int64_t compare(GraphBuilder& g, cudnnPointwiseMode_t mode, int64_t like, int64_t a, int64_t b) {
  const int64_t y = g.like(like, CUDNN_DATA_BOOLEAN);
  g.pointwise(mode, CUDNN_DATA_BOOLEAN, a, b, -1, y);
  return y;
}

// Scores with query row i < column j replaced by the lowest float.
int64_t causal_mask(GraphBuilder& g, int64_t s, cudnnDataType_t index_precision) {
  const int64_t row = index_of(g, s, 2, index_precision), col = index_of(g, s, 3, index_precision);
  return select_or_lowest(g, s, compare(g, CUDNN_POINTWISE_CMP_GE, s, row, col));
}

// Scores outside the (per-batch) lengths replaced by the lowest float.
int64_t padding_mask(GraphBuilder& g, int64_t s) {
  const int64_t row = index_of(g, s, 2, CUDNN_DATA_INT32), col = index_of(g, s, 3, CUDNN_DATA_INT32);
  const int64_t in_rows = compare(g, CUDNN_POINTWISE_CMP_LT, s, row, kSeqQ);
  const int64_t in_cols = compare(g, CUDNN_POINTWISE_CMP_LT, s, col, kSeqKV);
  return select_or_lowest(g, s, compare(g, CUDNN_POINTWISE_LOGICAL_AND, s, in_rows, in_cols));
}

// The tensors both graphs read: Q and K^T as views of the qkv rows (W = (NH + 2*NKV)*HD), the
// scale, the masks' lowest float, and the padding mask's lengths where it is needed (then
// seq_q, seq_kv >= 0).
void input_tensors(GraphBuilder& g, const Shape& sh, bool padding, int64_t& seq_q, int64_t& seq_kv) {
  const int64_t b = sh.b, t = sh.t, nh = sh.nh, nkv = sh.nkv, hd = sh.hd, w = (nh + 2 * nkv) * hd;
  g.tensor(kQ, {b, nh, t, hd}, {t * w, hd, w, 1}, CUDNN_DATA_BFLOAT16, false);
  g.tensor(kKT, {b, nkv, hd, t}, {t * w, hd, 1, w}, CUDNN_DATA_BFLOAT16, false);
  for (int64_t uid : {kScale, kLowest}) g.tensor(uid, {1, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_FLOAT, false, true);
  seq_q = seq_kv = -1;
  if (padding) {
    seq_q = g.tensor(kSeqQ, {b, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT32, false);
    seq_kv = g.tensor(kSeqKV, {b, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT32, false);
  }
}

// out = softmax(mask(scale * Q K^T)) V and lse = the log-sum-exp of each masked row, the
// composite softmax that cuDNN's fused forward engines recognize:
//
//   S   = scale * Q K^T, causal mask        (B, NH, T, T) virtual
//   M   = rowmax(S), Z = rowsum(exp(S - M)) (B, NH, T, 1) virtual
//   lse = M + log(Z)                        -> lse (B, NH, T)
//   O   = (exp(S - M) / Z) V                (GQA: V's heads broadcast over each group)
// The probabilities enter the second product in f32 or, with probabilities_bf16, rounded to
// bf16 (both are tried; the first an engine takes is kept).
void build_forward_graph(GraphBuilder& g, const Shape& sh, bool probabilities_bf16, bool padding) {
  const int64_t b = sh.b, t = sh.t, nh = sh.nh, nkv = sh.nkv, hd = sh.hd, w = (nh + 2 * nkv) * hd;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  int64_t seq_q = -1, seq_kv = -1;
  input_tensors(g, sh, padding, seq_q, seq_kv);
  g.tensor(kV, {b, nkv, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kO, {b, nh, t, hd}, {t * nh * hd, hd, nh * hd, 1}, bf, false);
  g.tensor(kStats, {b, nh, t, 1}, {nh * t, t, 1, 1}, f32, false);
  const Dims scores{b, nh, t, t}, scores_stride{nh * t * t, t * t, t, 1};
  const Dims rows{b, nh, t, 1}, rows_stride{nh * t, t, 1, 1};

  int64_t s = g.virtual_tensor(scores, scores_stride, f32);
  g.matmul(kQ, kKT, s, seq_q, seq_kv);
  s = g.pointwise(CUDNN_POINTWISE_MUL, s, kScale);
  if (padding) s = padding_mask(g, s);
  s = causal_mask(g, s, CUDNN_DATA_INT32);

  const int64_t row_max = g.virtual_tensor(rows, rows_stride, f32);
  g.reduce(CUDNN_REDUCE_TENSOR_MAX, s, row_max);
  const int64_t shifted = g.pointwise(CUDNN_POINTWISE_SUB, s, row_max);
  const int64_t e = g.like(shifted, f32);
  g.pointwise(CUDNN_POINTWISE_EXP, f32, shifted, -1, -1, e);
  const int64_t row_sum = g.virtual_tensor(rows, rows_stride, f32);
  g.reduce_sum(e, row_sum);
  const int64_t log_sum = g.like(row_sum, f32);
  g.pointwise(CUDNN_POINTWISE_LOG, f32, row_sum, -1, -1, log_sum);
  g.pointwise(CUDNN_POINTWISE_ADD, f32, row_max, log_sum, -1, kStats);

  const int64_t p = g.virtual_tensor(scores, scores_stride, probabilities_bf16 ? bf : f32);
  g.pointwise(CUDNN_POINTWISE_DIV, f32, e, row_sum, -1, p);
  g.matmul(p, kV, kO, seq_q, -1, seq_kv);
}

void build_backward_graph(GraphBuilder& g, const Shape& sh, MaskPlacement placement, bool padding) {
  const int64_t b = sh.b, t = sh.t, nh = sh.nh, nkv = sh.nkv, hd = sh.hd, w = (nh + 2 * nkv) * hd;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  // In memory: Q, K, V and their gradients as views of the qkv rows, K and V seen transposed.
  int64_t seq_q = -1, seq_kv = -1;
  input_tensors(g, sh, padding, seq_q, seq_kv);
  g.tensor(kVT, {b, nkv, hd, t}, {t * w, hd, 1, w}, bf, false);
  g.tensor(kO, {b, nh, t, hd}, {t * nh * hd, hd, nh * hd, 1}, bf, false);
  g.tensor(kDO, {b, nh, t, hd}, {t * nh * hd, hd, nh * hd, 1}, bf, false);
  g.tensor(kStats, {b, nh, t, 1}, {nh * t, t, 1, 1}, f32, false);
  g.tensor(kDQ, {b, nh, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kDK, {b, nkv, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kDV, {b, nkv, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kOne, {1, 1, 1, 1}, {1, 1, 1, 1}, f32, false, true);
  g.tensor(kSoftmaxSum, {b, nh, t, 1}, {nh * t, t, 1, 1}, f32, false);
  g.tensor(kDQAccum, {b, nh, t, hd}, {nh * t * hd, t * hd, hd, 1}, f32, false);
  const Dims scores{b, nh, t, t}, scores_stride{nh * t * t, t * t, t, 1};
  const Dims scores_transposed_stride{nh * t * t, t * t, 1, t};

  // D = rowsum(dO * O), kept in memory for the dS step.
  const int64_t d_o_o = g.virtual_tensor({b, nh, t, hd}, {nh * t * hd, t * hd, nh * hd, 1}, f32);
  g.pointwise(CUDNN_POINTWISE_MUL, f32, kDO, kO, -1, d_o_o);
  const int64_t row_sum = g.virtual_tensor({b, nh, t, 1}, {nh * t, t, 1, 1}, f32);
  g.reduce_sum(d_o_o, row_sum);
  g.pointwise(CUDNN_POINTWISE_MUL, f32, row_sum, kOne, -1, kSoftmaxSum);

  // P = exp(mask(scale * Q K^T) - lse).
  int64_t s = g.virtual_tensor(scores, scores_stride, f32);
  g.matmul(kQ, kKT, s, seq_q, seq_kv);
  s = g.pointwise(CUDNN_POINTWISE_MUL, s, kScale);
  if (padding) s = padding_mask(g, s);
  if (placement == MaskPlacement::before_stats) s = causal_mask(g, s, CUDNN_DATA_INT32);
  s = g.pointwise(CUDNN_POINTWISE_SUB, s, kStats);
  if (placement == MaskPlacement::after_stats) s = causal_mask(g, s, CUDNN_DATA_FLOAT);
  const int64_t p = g.like(s, f32);
  g.pointwise(CUDNN_POINTWISE_EXP, f32, s, -1, -1, p);

  // dV = P^T dO; with grouped heads, per query head then summed over each group.
  const bool grouped = nh != nkv;
  const Dims full_heads{b, nh, t, hd}, full_heads_stride{nh * t * hd, t * hd, hd, 1};
  const int64_t p_t = g.virtual_tensor(scores, scores_transposed_stride, bf);
  g.reshape(p, p_t);
  const int64_t dv = grouped ? g.virtual_tensor(full_heads, full_heads_stride, bf) : kDV;
  g.matmul(p_t, kDO, dv, seq_kv, -1, seq_q);
  if (grouped) g.reduce_sum(dv, kDV);

  // dS = scale * P * (dO V^T - D).
  int64_t dp = g.virtual_tensor(scores, scores_stride, f32);
  g.matmul(kDO, kVT, dp, seq_q, seq_kv);
  dp = g.pointwise(CUDNN_POINTWISE_SUB, dp, kSoftmaxSum);
  dp = g.pointwise(CUDNN_POINTWISE_MUL, dp, p);
  const int64_t ds = g.pointwise(CUDNN_POINTWISE_MUL, dp, kScale);

  // dK = dS^T Q, grouped as dV.
  const int64_t ds_t = g.virtual_tensor(scores, scores_transposed_stride, bf);
  g.reshape(ds, ds_t);
  const int64_t dk = grouped ? g.virtual_tensor(full_heads, full_heads_stride, bf) : kDK;
  g.matmul(ds_t, kQ, dk, seq_kv, -1, seq_q);
  if (grouped) g.reduce_sum(dk, kDK);

  // dQ = dS K, accumulated in f32, then rounded into dqkv.
  const int64_t k = g.virtual_tensor({b, nkv, t, hd}, {t * w, hd, w, 1}, f32);
  g.reshape(kKT, k);
  g.matmul(ds, k, kDQAccum, seq_q, -1, seq_kv);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, f32, kDQAccum, -1, -1, kDQ);
}
// ---- plans, one per direction, shape and device ------------------------------------------------

struct Plan {
  std::string reason;  // non-empty: there is no plan, and this says why
  GraphBuilder graph_parts;
  Descriptor graph, plan;
  int64_t engine_workspace = 0, dq_accum_bytes = 0;
  bool padding = false;
  int32_t* seq_lens = nullptr;  // (2, B) device, all T: the padding mask's lengths
  float scale = 0, one = 1, lowest = std::numeric_limits<float>::lowest();
};

const char* direction_name(Direction d) { return d == Direction::forward ? "attention forward" : "attention backward"; }

// The graph of a direction in its form 0 or 1 (the backward: the mask after or before lse; the
// forward: the probabilities in f32 or bf16), and that form's name.
const char* build_graph(GraphBuilder& g, Direction direction, const Shape& sh, int form, bool padding) {
  if (direction == Direction::forward) {
    build_forward_graph(g, sh, form == 1, padding);
    return form == 1 ? "probabilities in bf16" : "probabilities in f32";
  }
  build_backward_graph(g, sh, form == 1 ? MaskPlacement::before_stats : MaskPlacement::after_stats, padding);
  return form == 1 ? "mask before lse" : "mask after lse";
}

std::unique_ptr<Plan> build_plan(cudnnHandle_t handle, Direction direction, const Shape& sh) {
  auto plan = std::make_unique<Plan>();
  if (sh.hd % 8 != 0 || sh.hd > 256) {
    plan->reason = str("head size ", sh.hd, " is not a multiple of 8 up to 256");
    return plan;
  }
  if (sh.nkv <= 0 || sh.nh % sh.nkv != 0) {
    plan->reason = str("query heads ", sh.nh, " are not a multiple of key/value heads ", sh.nkv);
    return plan;
  }
  plan->scale = float(1.0 / std::sqrt(double(sh.hd)));
  if (direction == Direction::backward) plan->dq_accum_bytes = sh.b * sh.nh * sh.t * sh.hd * int64_t(sizeof(float));
  plan->padding = cudnnGetVersion() < 91600 && sh.t % 128 != 0;
  std::string why;
  for (int form = 0; form < 2; ++form) {
    const char* name = "";
    try {
      plan->graph = Descriptor();  // before the tensors it was made from
      plan->graph_parts = GraphBuilder();
      name = build_graph(plan->graph_parts, direction, sh, form, plan->padding);
      plan->graph = plan->graph_parts.finalize(handle);
    } catch (const CudnnFailure& e) {
      why += str("[form ", form, "] ", e.what(), " ");
      continue;
    }
    const std::string no_plan =
        cudnn::first_execution_plan(plan->graph, handle, plan->plan, plan->engine_workspace, direction_name(direction));
    if (no_plan.empty()) {
      log_debug("cuDNN ", direction_name(direction), ": graph with the ", name, plan->padding ? ", padding mask" : "");
      break;
    }
    why += str("[", name, "] ", no_plan, " ");
  }
  if (!plan->plan.get()) {
    plan->reason = str("cuDNN ", cudnnGetVersion(), " has no engine for this graph: ", why);
    return plan;
  }
  if (plan->padding) {
    const std::vector<int32_t> lengths(size_t(2 * sh.b), int32_t(sh.t));
    ZT_CUDA_CHECK(cudaMalloc(&plan->seq_lens, lengths.size() * sizeof(int32_t)));
    ZT_CUDA_CHECK(cudaMemcpy(plan->seq_lens, lengths.data(), lengths.size() * sizeof(int32_t),
                             cudaMemcpyHostToDevice));
  }
  return plan;
}

// The plan for the direction and shape on the current device, built on first use. Holds
// cudnn::graph_mutex().
Plan& plan_for(Direction direction, const Shape& sh, cudnnHandle_t& handle) {
  static auto* plans =
      new std::map<std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>>;
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  handle = cudnn::handle_for_device(device);
  auto& slot = (*plans)[{int(direction), device, sh.b, sh.t, sh.nh, sh.nkv, sh.hd}];
  if (!slot) {
    slot = build_plan(handle, direction, sh);
    if (!slot->reason.empty())
      log_warn("cuDNN ", direction_name(direction), ", B=", sh.b, " T=", sh.t, " NH=", sh.nh, " NKV=", sh.nkv,
               " HD=", sh.hd, ": ", slot->reason, "; our kernels run instead");
  }
  return *slot;
}

std::string plan_reason(Direction direction, const Shape& sh) {
  std::lock_guard<std::mutex> lock(cudnn::graph_mutex());
  cudnnHandle_t handle = nullptr;
  try {
    return plan_for(direction, sh, handle).reason;
  } catch (const CudnnFailure& e) {
    return e.what();  // no handle (no usable cuDNN library)
  }
}

// Runs the direction's plan for the shape on the compute stream with the variant pack's tensors
// (uids[i] at pointers[i]; the scalars and the padding lengths are added here); false where
// there is no plan. Holds cudnn::graph_mutex().
bool execute(Direction direction, const Shape& sh, std::vector<int64_t> uids, std::vector<void*> pointers) {
  std::lock_guard<std::mutex> lock(cudnn::graph_mutex());
  cudnnHandle_t handle = nullptr;
  Plan* plan = nullptr;
  try {
    plan = &plan_for(direction, sh, handle);
  } catch (const CudnnFailure&) {
    return false;
  }
  if (!plan->reason.empty()) return false;

  const size_t engine_bytes = (size_t(plan->engine_workspace) + 255) / 256 * 256;
  Scratch workspace(engine_bytes + size_t(plan->dq_accum_bytes));
  char* base = workspace.as<char>();
  uids.insert(uids.end(), {kScale, kLowest});
  pointers.insert(pointers.end(), {&plan->scale, &plan->lowest});
  if (direction == Direction::backward) {
    uids.insert(uids.end(), {kOne, kDQAccum});
    pointers.insert(pointers.end(), {&plan->one, base + engine_bytes});
  }
  if (plan->padding) {
    uids.insert(uids.end(), {kSeqQ, kSeqKV});
    pointers.insert(pointers.end(), {plan->seq_lens, plan->seq_lens + sh.b});
  }
  void* engine_workspace = plan->engine_workspace > 0 ? base : nullptr;
  try {
    Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), int64_t(uids.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers.data(), int64_t(pointers.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &engine_workspace)
        .finalize("variant pack");
    cudnn::check(cudnnSetStream(handle, compute_stream()), "cudnnSetStream");
    cudnn::check(cudnnBackendExecute(handle, plan->plan.get(), pack.get()), "cudnnBackendExecute");
  } catch (const CudnnFailure& e) {
    ZT_THROW("cuDNN ", direction_name(direction), ", B=", sh.b, " T=", sh.t, " NH=", sh.nh, " NKV=", sh.nkv,
             " HD=", sh.hd, ": ", e.what());
  }
  return true;
}

}  // namespace

std::string cudnn_attention_forward_plan(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  return plan_reason(Direction::forward, {b, t, nh, nkv, hd});
}

std::string cudnn_attention_backward_plan(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  return plan_reason(Direction::backward, {b, t, nh, nkv, hd});
}

bool cudnn_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv,
                             int64_t hd) {
  if (!aligned16({out, lse, qkv})) return false;
  const int64_t k_offset = nh * hd, v_offset = (nh + nkv) * hd;
  auto* q = const_cast<bf16*>(qkv);
  return execute(Direction::forward, {b, t, nh, nkv, hd}, {kQ, kKT, kV, kO, kStats},
                 {q, q + k_offset, q + v_offset, out, lse});
}

bool cudnn_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  if (!aligned16({dqkv, dsum, dout, out, qkv, lse})) return false;
  const int64_t k_offset = nh * hd, v_offset = (nh + nkv) * hd;
  auto* q = const_cast<bf16*>(qkv);
  return execute(Direction::backward, {b, t, nh, nkv, hd}, {kQ, kKT, kVT, kO, kDO, kStats, kDQ, kDK, kDV, kSoftmaxSum},
                 {q, q + k_offset, q + v_offset, const_cast<bf16*>(out), const_cast<bf16*>(dout),
                  const_cast<float*>(lse), dqkv, dqkv + k_offset, dqkv + v_offset, dsum});
}

}  // namespace zt::cuda
