// The interface every transport implements (MPI, NCCL, local). ProcessGroup checks arguments
// (dtypes, sizes, roots) and fills an OpInfo before calling in, so backends may assume that
// shapes agree and that ranks are in range.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zt/comm/reduce_op.hpp"
#include "zt/comm/work.hpp"
#include "zt/core/tensor.hpp"

namespace zt::comm {

// What an operation is, for timeouts, errors and the comms logger.
struct OpInfo {
  const char* op = "";  // canonical name: "all_reduce", ...
  size_t bytes = 0;     // nccl-tests' size S (see comms_logger.hpp)
  std::string what;     // "all_reduce of 4096 bytes (f32 x 1024, sum) on group 'world' (size 4)"
  int group_size = 1;
  double timeout_s = 600;
  bool profile = false;  // record in the comms logger on completion
  void* cuda_stream = nullptr;  // device backends: the caller's stream (cudaStream_t), ops go after its work
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  virtual Work all_reduce(const Tensor& tensor, ReduceOp op, const OpInfo& info) = 0;
  virtual Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op, const OpInfo& info) = 0;
  virtual Work reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                                ReduceOp op, const OpInfo& info) = 0;
  virtual Work all_gather(const Tensor& output, const Tensor& input, const OpInfo& info) = 0;
  virtual Work all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                            const OpInfo& info) = 0;
  virtual Work broadcast(const Tensor& tensor, int root, const OpInfo& info) = 0;
  virtual Work reduce(const Tensor& tensor, int root, ReduceOp op, const OpInfo& info) = 0;
  virtual Work all_to_all(const Tensor& output, const Tensor& input, const OpInfo& info) = 0;
  virtual Work send(const Tensor& tensor, int dst, int tag, const OpInfo& info) = 0;
  virtual Work recv(const Tensor& tensor, int src, int tag, const OpInfo& info) = 0;
  virtual Work barrier(const OpInfo& info) = 0;

  // Host backends only: the backend of the sub-group this rank joins (color >= 0), nullptr for
  // color < 0. Collective over this backend's ranks.
  virtual std::shared_ptr<Backend> split(int color, int key, double timeout_s) = 0;

  // Set once an operation failed or timed out: the first failure's message.
  virtual bool failed() const = 0;
  virtual std::string failure() const = 0;
};

// Offsets of chunks of the given counts laid end to end.
std::vector<int64_t> chunk_offsets(const std::vector<int64_t>& counts);

}  // namespace zt::comm
