// The causal attention backward as a cuDNN operation graph, in the composite form that cuDNN's
// fused flash-attention engines recognize (the engines match the whole graph, then run it as one
// kernel family; nothing of the graph is materialized):
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
// mask (with per-batch lengths, all T) to be computed right. Two placements of the causal mask
// are tried, after the subtraction of lse (as recent graphs put it) and before it; the first
// whose graph some engine takes is kept. Letters as in cudnn_attention.hpp; W = (NH + 2*NKV)*HD,
// the qkv row.
#include "cudnn_attention.hpp"

#include <cudnn.h>

#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <vector>

#include "common.cuh"
#include "zt/core/log.hpp"

// The handle attributes of operation graphs and plans are deprecated by newer headers but still
// required by the 9.x libraries this runs against.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace zt::cuda {

namespace {

// ---- backend descriptors ---------------------------------------------------------------------

// A failed backend call, with what was being done and cuDNN's own reason.
struct CudnnFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(cudnnStatus_t status, const char* what) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  char last[2048] = {};
  cudnnGetLastErrorString(last, sizeof last);
  std::string message = str(what, ": ", cudnnGetErrorString(status));
  if (last[0]) message += str(" (", last, ")");
  throw CudnnFailure(message);
}

class Descriptor {
 public:
  Descriptor() = default;
  explicit Descriptor(cudnnBackendDescriptorType_t type) {
    check(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor");
  }
  Descriptor(Descriptor&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  cudnnBackendDescriptor_t get() const { return d_; }

  template <class T>
  Descriptor& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, const T* values,
                  int64_t count = 1) {
    check(cudnnBackendSetAttribute(d_, name, type, count, values), "cudnnBackendSetAttribute");
    return *this;
  }
  Descriptor& set_int(cudnnBackendAttributeName_t name, int64_t v) { return set(name, CUDNN_TYPE_INT64, &v); }
  Descriptor& set_ints(cudnnBackendAttributeName_t name, const std::array<int64_t, 4>& v) {
    return set(name, CUDNN_TYPE_INT64, v.data(), 4);
  }
  Descriptor& set_bool(cudnnBackendAttributeName_t name, bool v) { return set(name, CUDNN_TYPE_BOOLEAN, &v); }
  Descriptor& set_type(cudnnBackendAttributeName_t name, cudnnDataType_t v) {
    return set(name, CUDNN_TYPE_DATA_TYPE, &v);
  }
  Descriptor& set_desc(cudnnBackendAttributeName_t name, const Descriptor& v) {
    cudnnBackendDescriptor_t raw = v.get();
    return set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw);
  }
  Descriptor& finalize(const char* what) {
    check(cudnnBackendFinalize(d_), what);
    return *this;
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

using Dims = std::array<int64_t, 4>;

// The operation graph as it is built: tensors by unique id, then operations in the order of the
// data flow. Everything stays alive with the plan made from it.
class GraphBuilder {
 public:
  // A tensor in memory (a variant pack entry, uid given) or one the engine keeps to itself.
  int64_t tensor(int64_t uid, const Dims& dim, const Dims& stride, cudnnDataType_t type, bool is_virtual,
                 bool by_value = false) {
    Descriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    t.set_type(CUDNN_ATTR_TENSOR_DATA_TYPE, type)
        .set_ints(CUDNN_ATTR_TENSOR_DIMENSIONS, dim)
        .set_ints(CUDNN_ATTR_TENSOR_STRIDES, stride)
        .set_int(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)
        .set_int(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16)
        .set_bool(CUDNN_ATTR_TENSOR_IS_VIRTUAL, is_virtual);
    if (by_value) t.set_bool(CUDNN_ATTR_TENSOR_IS_BY_VALUE, true);
    t.finalize("tensor descriptor");
    tensors_.emplace(uid, std::move(t));
    shapes_.emplace(uid, std::make_pair(dim, stride));
    return uid;
  }
  int64_t virtual_tensor(const Dims& dim, const Dims& stride, cudnnDataType_t type) {
    return tensor(next_virtual_++, dim, stride, type, true);
  }
  // A virtual tensor shaped as another one.
  int64_t like(int64_t uid, cudnnDataType_t type) {
    const auto& [dim, stride] = shapes_.at(uid);
    return virtual_tensor(dim, stride, type);
  }

  // y = mode(x, b) or mode(x, b, t); b and t < 0: absent. axis >= 0: GEN_INDEX's axis.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision, int64_t x, int64_t b, int64_t t, int64_t y,
                 int64_t axis = -1) {
    Descriptor pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, &mode)
        .set_type(CUDNN_ATTR_POINTWISE_MATH_PREC, precision);
    if (axis >= 0) pw.set_int(CUDNN_ATTR_POINTWISE_AXIS, axis);
    pw.finalize("pointwise descriptor");
    Descriptor op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw).set_desc(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, at(x));
    if (b >= 0) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, at(b));
    if (t >= 0) op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, at(t));
    op.set_desc(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, at(y)).finalize("pointwise operation");
    keep_.push_back(std::move(pw));
    ops_.push_back(std::move(op));
  }
  // A new virtual f32 tensor shaped as x, from mode(x, b).
  int64_t pointwise(cudnnPointwiseMode_t mode, int64_t x, int64_t b) {
    const int64_t y = like(x, CUDNN_DATA_FLOAT);
    pointwise(mode, CUDNN_DATA_FLOAT, x, b, -1, y);
    return y;
  }

  // c = a b over the last two dimensions (batched over the first two, broadcast where a has
  // more heads than b). m, n, k overrides: per-batch lengths, or < 0.
  void matmul(int64_t a, int64_t b, int64_t c, int64_t m_override = -1, int64_t n_override = -1,
              int64_t k_override = -1) {
    Descriptor mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    mm.set_type(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT).finalize("matmul descriptor");
    Descriptor op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_ADESC, at(a))
        .set_desc(CUDNN_ATTR_OPERATION_MATMUL_BDESC, at(b))
        .set_desc(CUDNN_ATTR_OPERATION_MATMUL_CDESC, at(c))
        .set_desc(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm);
    if (m_override >= 0) op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, at(m_override));
    if (n_override >= 0) op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, at(n_override));
    if (k_override >= 0) op.set_desc(CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, at(k_override));
    op.finalize("matmul operation");
    keep_.push_back(std::move(mm));
    ops_.push_back(std::move(op));
  }

  // y = the sum of x over the dimensions where y has extent 1 (or fewer heads).
  void reduce_sum(int64_t x, int64_t y) {
    Descriptor red(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    const cudnnReduceTensorOp_t add = CUDNN_REDUCE_TENSOR_ADD;
    red.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &add)
        .set_type(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT)
        .finalize("reduction descriptor");
    Descriptor op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, at(x))
        .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, at(y))
        .set_desc(CUDNN_ATTR_OPERATION_REDUCTION_DESC, red)
        .finalize("reduction operation");
    keep_.push_back(std::move(red));
    ops_.push_back(std::move(op));
  }

  // y: x seen with other dimensions and strides (a transpose, when they are swapped).
  void reshape(int64_t x, int64_t y) {
    Descriptor op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    op.set_desc(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, at(x))
        .set_desc(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, at(y))
        .finalize("reshape operation");
    ops_.push_back(std::move(op));
  }

  Descriptor finalize(cudnnHandle_t handle) {
    std::vector<cudnnBackendDescriptor_t> raw;
    for (const Descriptor& op : ops_) raw.push_back(op.get());
    Descriptor graph(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, &handle)
        .set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, raw.data(), int64_t(raw.size()))
        .finalize("operation graph");
    return graph;
  }

 private:
  const Descriptor& at(int64_t uid) const { return tensors_.at(uid); }

  std::map<int64_t, Descriptor> tensors_;
  std::map<int64_t, std::pair<Dims, Dims>> shapes_;
  std::vector<Descriptor> keep_, ops_;
  int64_t next_virtual_ = 1000;
};

// ---- the graph -------------------------------------------------------------------------------

// Unique ids of the tensors in memory: the variant pack's entries.
enum Uid : int64_t {
  kQ = 1, kKT, kVT, kO, kDO, kStats, kDQ, kDK, kDV,  // views of qkv, out, dout, lse, dqkv
  kScale, kOne, kLowest,                            // scalars passed by value
  kSoftmaxSum, kDQAccum,                            // dsum and f32 workspace
  kSeqQ, kSeqKV,                                    // (B, 1, 1, 1) lengths for the padding mask
};

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

void build_backward_graph(GraphBuilder& g, const Shape& sh, MaskPlacement placement, bool padding) {
  const int64_t b = sh.b, t = sh.t, nh = sh.nh, nkv = sh.nkv, hd = sh.hd, w = (nh + 2 * nkv) * hd;
  const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  // In memory: Q, K, V and their gradients as views of the qkv rows, K and V seen transposed.
  g.tensor(kQ, {b, nh, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kKT, {b, nkv, hd, t}, {t * w, hd, 1, w}, bf, false);
  g.tensor(kVT, {b, nkv, hd, t}, {t * w, hd, 1, w}, bf, false);
  g.tensor(kO, {b, nh, t, hd}, {t * nh * hd, hd, nh * hd, 1}, bf, false);
  g.tensor(kDO, {b, nh, t, hd}, {t * nh * hd, hd, nh * hd, 1}, bf, false);
  g.tensor(kStats, {b, nh, t, 1}, {nh * t, t, 1, 1}, f32, false);
  g.tensor(kDQ, {b, nh, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kDK, {b, nkv, t, hd}, {t * w, hd, w, 1}, bf, false);
  g.tensor(kDV, {b, nkv, t, hd}, {t * w, hd, w, 1}, bf, false);
  for (int64_t uid : {kScale, kOne, kLowest}) g.tensor(uid, {1, 1, 1, 1}, {1, 1, 1, 1}, f32, false, true);
  g.tensor(kSoftmaxSum, {b, nh, t, 1}, {nh * t, t, 1, 1}, f32, false);
  g.tensor(kDQAccum, {b, nh, t, hd}, {nh * t * hd, t * hd, hd, 1}, f32, false);
  int64_t seq_q = -1, seq_kv = -1;
  if (padding) {
    seq_q = g.tensor(kSeqQ, {b, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT32, false);
    seq_kv = g.tensor(kSeqKV, {b, 1, 1, 1}, {1, 1, 1, 1}, CUDNN_DATA_INT32, false);
  }
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

// ---- plans, one per shape and device ---------------------------------------------------------

struct Plan {
  std::string reason;  // non-empty: there is no plan, and this says why
  GraphBuilder graph_parts;
  Descriptor graph, plan;
  int64_t engine_workspace = 0, dq_accum_bytes = 0;
  bool padding = false;
  int32_t* seq_lens = nullptr;  // (2, B) device, all T: the padding mask's lengths
  float scale = 0, one = 1, lowest = std::numeric_limits<float>::lowest();
};

// The first engine configuration, in heuristic mode A's order (then the fallback list's), whose
// execution plan finalizes; why none did otherwise.
std::string make_plan(Plan& plan, cudnnHandle_t handle) {
  std::string why;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::vector<Descriptor> configs;
    try {
      Descriptor heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
      heur.set_desc(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, plan.graph)
          .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, &mode)
          .finalize("engine heuristics");
      int64_t count = 0;
      check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                     &count, nullptr),
            "engine heuristics' result count");
      std::vector<cudnnBackendDescriptor_t> raw;
      for (int64_t i = 0; i < count; ++i) {
        configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
        raw.push_back(configs.back().get());
      }
      int64_t got = 0;
      if (count > 0)
        check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                       count, &got, raw.data()),
              "engine heuristics' results");
      configs.resize(size_t(got));
      if (got == 0) why += str(mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "fallback list", ": no engine; ");
    } catch (const CudnnFailure& e) {
      why += str(e.what(), "; ");
      continue;
    }
    for (Descriptor& config : configs) {
      try {
        Descriptor p(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        p.set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, &handle)
            .set_desc(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config)
            .finalize("execution plan");
        int64_t workspace = 0, n = 0;
        check(cudnnBackendGetAttribute(p.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                       &workspace),
              "execution plan's workspace size");
        Descriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
        int64_t engine_index = -1;
        cudnnBackendDescriptor_t raw_engine = engine.get();
        if (cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                     &raw_engine) == CUDNN_STATUS_SUCCESS)
          cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                                   &engine_index);
        plan.plan = std::move(p);
        plan.engine_workspace = workspace;
        log_debug("cuDNN attention backward: engine ", engine_index, ", workspace ", workspace, " bytes");
        return "";
      } catch (const CudnnFailure& e) {
        why += str(e.what(), "; ");
      }
    }
  }
  return why.empty() ? "no engine configuration" : why;
}

struct Context {
  std::mutex mutex;  // the plans, the handles, and each execution's stream setting
  std::map<int, cudnnHandle_t> handles;
  std::map<std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans;
};

Context& context() {
  static Context* c = new Context;  // lives as long as the process, like the handles in it
  return *c;
}

cudnnHandle_t handle_for(Context& c, int device) {
  auto it = c.handles.find(device);
  if (it != c.handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  check(cudnnCreate(&h), "cudnnCreate");
  c.handles.emplace(device, h);
  return h;
}

std::unique_ptr<Plan> build_plan(cudnnHandle_t handle, const Shape& sh) {
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
  plan->dq_accum_bytes = sh.b * sh.nh * sh.t * sh.hd * int64_t(sizeof(float));
  plan->padding = cudnnGetVersion() < 91600 && sh.t % 128 != 0;
  std::string why;
  for (const MaskPlacement placement : {MaskPlacement::after_stats, MaskPlacement::before_stats}) {
    const char* name = placement == MaskPlacement::after_stats ? "mask after lse" : "mask before lse";
    try {
      plan->graph = Descriptor();  // before the tensors it was made from
      plan->graph_parts = GraphBuilder();
      build_backward_graph(plan->graph_parts, sh, placement, plan->padding);
      plan->graph = plan->graph_parts.finalize(handle);
    } catch (const CudnnFailure& e) {
      why += str("[", name, "] ", e.what(), " ");
      continue;
    }
    const std::string no_plan = make_plan(*plan, handle);
    if (no_plan.empty()) {
      log_debug("cuDNN attention backward: graph with the ", name, plan->padding ? ", padding mask" : "");
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

// The plan for the shape on the current device, built on first use. Holds c.mutex.
Plan& plan_for(Context& c, const Shape& sh, cudnnHandle_t& handle) {
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  handle = handle_for(c, device);
  auto& slot = c.plans[{device, sh.b, sh.t, sh.nh, sh.nkv, sh.hd}];
  if (!slot) {
    slot = build_plan(handle, sh);
    if (!slot->reason.empty())
      log_warn("cuDNN attention backward, B=", sh.b, " T=", sh.t, " NH=", sh.nh, " NKV=", sh.nkv, " HD=", sh.hd,
               ": ", slot->reason, "; our kernels run instead");
  }
  return *slot;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

std::string cudnn_attention_backward_plan(int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  Context& c = context();
  std::lock_guard<std::mutex> lock(c.mutex);
  cudnnHandle_t handle = nullptr;
  try {
    return plan_for(c, {b, t, nh, nkv, hd}, handle).reason;
  } catch (const CudnnFailure& e) {
    return e.what();  // no handle (no usable cuDNN library)
  }
}

bool cudnn_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  for (const void* p : {static_cast<const void*>(dqkv), static_cast<const void*>(dsum),
                        static_cast<const void*>(dout), static_cast<const void*>(out),
                        static_cast<const void*>(qkv), static_cast<const void*>(lse)})
    if (!aligned16(p)) return false;
  Context& c = context();
  std::lock_guard<std::mutex> lock(c.mutex);
  cudnnHandle_t handle = nullptr;
  Plan* plan = nullptr;
  try {
    plan = &plan_for(c, {b, t, nh, nkv, hd}, handle);
  } catch (const CudnnFailure&) {
    return false;
  }
  if (!plan->reason.empty()) return false;

  const size_t engine_bytes = (size_t(plan->engine_workspace) + 255) / 256 * 256;
  Scratch workspace(engine_bytes + size_t(plan->dq_accum_bytes));
  char* base = workspace.as<char>();
  const int64_t k_offset = nh * hd, v_offset = (nh + nkv) * hd;
  std::vector<int64_t> uids = {kQ, kKT, kVT, kO, kDO, kStats, kDQ, kDK, kDV, kScale, kOne, kLowest, kSoftmaxSum,
                               kDQAccum};
  std::vector<void*> pointers = {const_cast<bf16*>(qkv),
                                 const_cast<bf16*>(qkv + k_offset),
                                 const_cast<bf16*>(qkv + v_offset),
                                 const_cast<bf16*>(out),
                                 const_cast<bf16*>(dout),
                                 const_cast<float*>(lse),
                                 dqkv,
                                 dqkv + k_offset,
                                 dqkv + v_offset,
                                 &plan->scale,
                                 &plan->one,
                                 &plan->lowest,
                                 dsum,
                                 base + engine_bytes};
  if (plan->padding) {
    uids.insert(uids.end(), {kSeqQ, kSeqKV});
    pointers.insert(pointers.end(), {plan->seq_lens, plan->seq_lens + b});
  }
  void* engine_workspace = plan->engine_workspace > 0 ? base : nullptr;
  try {
    Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.data(), int64_t(uids.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, pointers.data(), int64_t(pointers.size()))
        .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, &engine_workspace)
        .finalize("variant pack");
    check(cudnnSetStream(handle, compute_stream()), "cudnnSetStream");
    check(cudnnBackendExecute(handle, plan->plan.get(), pack.get()), "cudnnBackendExecute");
  } catch (const CudnnFailure& e) {
    ZT_THROW("cuDNN attention backward, B=", b, " T=", t, " NH=", nh, " NKV=", nkv, " HD=", hd, ": ", e.what());
  }
  return true;
}

}  // namespace zt::cuda
