// cuDNN's backend graph API, the parts every operation graph needs: descriptors that free
// themselves, a builder that keeps a graph's tensors and operations alive, and the first
// execution plan some engine finalizes for a graph. Failures are CudnnFailure, with what was
// being done and cuDNN's own reason. Compiled only where the build found cuDNN (ZT_HAS_CUDNN).
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "zt/core/error.hpp"

// The handle attributes of operation graphs and plans are deprecated by newer headers but still
// required by the 9.x libraries this runs against.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace zt::cuda::cudnn {

struct CudnnFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudnnStatus_t status, const char* what) {
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

  // y = the sum (or the largest, ...) of x over the dimensions where y has extent 1 (or fewer
  // heads).
  void reduce(cudnnReduceTensorOp_t mode, int64_t x, int64_t y) {
    Descriptor red(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    red.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &mode)
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
  void reduce_sum(int64_t x, int64_t y) { reduce(CUDNN_REDUCE_TENSOR_ADD, x, y); }

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

// The first engine configuration, in heuristic mode A's order (then the fallback list's), whose
// execution plan for `graph` finalizes: into plan, with its workspace size; "" then, else why
// none did. `what` names the graph in the debug log.
std::string first_execution_plan(const Descriptor& graph, cudnnHandle_t handle, Descriptor& plan,
                                 int64_t& workspace, const char* what);

// The lock every use of the handles and plans holds (a handle's stream is set per execution).
std::mutex& graph_mutex();

// The handle of a device, created on first use. Holds graph_mutex().
cudnnHandle_t handle_for_device(int device);

}  // namespace zt::cuda::cudnn
