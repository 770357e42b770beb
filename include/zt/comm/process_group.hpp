// ProcessGroup: the collectives that ZeRO is built from, over a set of ranks (c10d's
// ProcessGroup). Host tensors go through the host backend (MPI, or "local" when the world is one
// process); CUDA tensors through the device backend (NCCL, created on the first CUDA tensor, its
// unique id broadcast over the host backend).
//
// Shapes: tensors are contiguous, so only numel matters; n = size(), C a per-rank count.
// Every call is collective over the group (send/recv: over the pair) and must be issued in the
// same order on every member. Every call returns at once with a Work handle; tensors must not be
// touched until it completed. Sizes that do not divide by n are fine where the op has no
// per-rank chunks (all_reduce, broadcast, reduce, send/recv) and through the _v variants.
//
// Dtypes: f32, f64, bf16, f16, i32, i64, i8, u8 (b8 only for data movement). On the host,
// bf16/f16 reductions accumulate in f32 (staged through f32 buffers) and round once.
//
// Failure: an op that does not finish within timeout_s() (ZT_COMM_TIMEOUT_S, default 600 s)
// fails its Work with a zt::Error naming the op, the bytes and the group; the group (and, for
// MPI, the process's whole MPI state) is unusable afterwards.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "zt/comm/reduce_op.hpp"
#include "zt/comm/work.hpp"
#include "zt/core/tensor.hpp"

namespace zt::comm {

class Backend;  // src/comm/backend.hpp
struct OpInfo;

struct ProcessGroupOptions {
  // "auto": MPI (+ NCCL for CUDA tensors) when started by mpirun or zt launch with more than
  //         one rank, otherwise "local";
  // "mpi":  MPI for host tensors (even for a single process); CUDA tensors are refused;
  // "nccl": NCCL for CUDA tensors, MPI (or local when alone) for host tensors and bootstrap;
  // "local": one process, no MPI; collectives are copies.
  std::string backend = "auto";
  double timeout_s = 0;  // 0: ZT_COMM_TIMEOUT_S, else 600
};

class ProcessGroup {
 public:
  // Built by init_process_group / new_group / split; host is the group's host backend.
  ProcessGroup(std::string name, std::vector<int> world_ranks, int rank, std::shared_ptr<Backend> host,
               std::string device_backend, double timeout_s);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return int(world_ranks_.size()); }
  const std::string& name() const { return name_; }
  const std::vector<int>& world_ranks() const { return world_ranks_; }  // member i's world rank
  std::string describe() const;      // "group 'world' (size 4)"
  std::string backend_name() const;  // "mpi", "mpi+nccl", "local", ...
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double seconds);

  // The CUDA stream (cudaStream_t as void*) whose work NCCL operations are ordered after, and
  // which Work::wait() makes wait for their results. Default (nullptr): the calling thread's
  // compute stream (zt::cuda::compute_stream()).
  void set_cuda_stream(void* stream) { cuda_stream_ = stream; }
  void* cuda_stream() const { return cuda_stream_; }

  // tensor (N), in place: every rank ends with op over all ranks' tensors.
  Work all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::sum);
  // input (n*C), output (C): output = op over ranks of input[rank*C, (rank+1)*C). The output may
  // be that chunk of the input itself (in place).
  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op = ReduceOp::sum);
  // input (sum(counts)), output (counts[rank]): chunk r is input[offset_r, offset_r + counts[r]).
  Work reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                        ReduceOp op = ReduceOp::sum);
  // input (C), output (n*C): output[r*C, (r+1)*C) = rank r's input. The input may be this rank's
  // chunk of the output itself (in place).
  Work all_gather(const Tensor& output, const Tensor& input);
  // input (counts[rank]), output (sum(counts)): rank r's input lands at offset_r.
  Work all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts);
  // tensor (N), in place: every rank ends with root's tensor.
  Work broadcast(const Tensor& tensor, int root);
  // tensor (N), in place: root ends with op over all ranks; other ranks' tensors are unchanged.
  Work reduce(const Tensor& tensor, int root, ReduceOp op = ReduceOp::sum);
  // input (n*C), output (n*C), distinct: output chunk j = rank j's input chunk rank.
  Work all_to_all(const Tensor& output, const Tensor& input);
  // Point to point; tag >= 0 tells messages between the same pair apart on MPI (NCCL ignores it
  // and matches in order).
  Work send(const Tensor& tensor, int dst, int tag = 0);
  Work recv(const Tensor& tensor, int src, int tag = 0);
  Work barrier();

  // Creates the group's NCCL communicator on CUDA device `device` now (collective over the
  // group). Without it the first CUDA-tensor call does, which must then be a collective (not
  // send/recv) when the group has more than two ranks.
  void init_cuda(int device);

  // Sub-groups. Collective over this group: every member calls with the same arguments.
  // ranks are in this group's numbering; the new group numbers them in the order given.
  // Returns nullptr on ranks that are not members.
  std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks, const std::string& name = "");
  // Members with the same color >= 0 form one group, ordered by (key, rank); color < 0: none.
  std::shared_ptr<ProcessGroup> split(int color, int key, const std::string& name = "");

 private:
  Backend& backend_for(const Tensor& t, const char* op, bool point_to_point = false);
  Backend& device_backend(int device, const char* op, bool point_to_point);
  OpInfo make_info(const char* op, size_t bytes, const std::string& detail) const;

  std::string name_;
  std::vector<int> world_ranks_;
  int rank_;
  std::shared_ptr<Backend> host_;
  std::string device_kind_;  // "nccl", "local" or "none"
  std::shared_ptr<Backend> device_;
  int device_index_ = -1;
  std::mutex device_mutex_;
  std::atomic<double> timeout_s_;
  void* cuda_stream_ = nullptr;
};

// The world group: created by the first call, returned by later ones (whose options must match).
std::shared_ptr<ProcessGroup> init_process_group(const ProcessGroupOptions& options = {});
bool is_initialized();
std::shared_ptr<ProcessGroup> world();  // a zt::Error before init_process_group
// Releases the world group and shuts MPI down (skipped after a communication failure, when
// MPI's state is unknown). Logs the comms logger's summary when it is enabled.
void finalize();

// The launch as the environment tells it (zt launch's RANK/WORLD_SIZE, Open MPI's and PMI's
// variables); 1 and 0 for a process started on its own.
int launched_world_size();
int launched_rank();
int launched_local_rank();

// ZT_COMM_TIMEOUT_S, else 600 s.
double default_comm_timeout_s();

}  // namespace zt::comm
