// The NVMe store of the optimizer offload (ZeRO-Infinity for the optimizer): this rank's f32 master
// weights and optimizer states live in swap files under nvme_path, one folder per rank, and pass
// through buffer_count buffers of one sub-group each (docs/ARCHITECTURE.md, "Optimizer offload").
//
//   <nvme_path>/zt_optimizer_rank<R>_pid<PID>/master.swp, exp_avg.swp, ...
//
// Each file holds the sub-groups end to end, group g at g * stride bytes (stride: the largest
// sub-group's f32 bytes rounded up to 4096, so every transfer is O_DIRECT-aligned). The tensors of
// a step are numbered in order, q = g * (1 + states) + j (j = 0: the master, then the states in the
// optimizer's order), and tensor q lives in buffer q mod buffer_count, so each buffer sees reads and
// writes strictly one after another and a read of the next step never overtakes a write of this
// one. The folder is removed when the store ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "optimizer_offload.hpp"
#include "zt/io/async_file.hpp"

namespace zt::engine {

struct SwapSetup {
  int64_t partition = 0;       // P
  int64_t sub_group_size = 0;  // S
  std::vector<std::string> state_names;  // the optimizer's, in its order
  bool streams_targets = true;           // the optimizer's (LAMB reads every target first)
  std::string optimizer;                 // its name, for errors
  std::string nvme_path;
  int rank = 0;
  int64_t buffer_count = 4;
  io::AioOptions aio;
};

class NvmeStore : public OffloadStore {
 public:
  // Writes the initial master weights ((P) f32 on any device) into the swap files. A zt::Error
  // naming nvme_path when it is missing or not writable.
  NvmeStore(const SwapSetup& setup, const Tensor& initial_master);
  ~NvmeStore() override;  // waits for its I/O and removes the folder (never throws)

  std::vector<std::string> states() const override;
  Tensor master(int g) override { return view(g, 0); }
  Tensor state(int g, const std::string& name) override { return view(g, index_of(name)); }
  Tensor create_state(int g, const std::string& name, zero::Range within) override;
  void begin_step() override;
  void acquire(int g) override;
  void pump() override;
  void release(int g) override;
  void end_step() override;
  Tensor read(const std::string& name, int g) override;
  Tensor load_target(const std::string& name, int g) override;
  void commit_load(const std::string& name, int g) override;
  void set_states(const std::vector<std::string>& names) override;
  size_t master_bytes() const override { return 0; }
  size_t state_bytes() const override { return 0; }
  size_t buffer_bytes() const override { return buffers_.size() * size_t(stride_); }
  size_t disk_bytes() const override;
  std::string where() const override { return "nvme (" + folder_ + ")"; }

  const std::string& folder() const { return folder_; }

 private:
  int tensors() const { return int(1 + names_.size()); }
  int index_of(const std::string& name) const;  // 1 + the state's position
  int64_t sequence(int g, int j) const { return int64_t(g) * tensors() + j; }
  size_t buffer_of(int64_t q) const { return size_t(q % int64_t(buffers_.size())); }
  Tensor view(int g, int j) const;
  io::AsyncFile& file(int j) { return *files_[size_t(j)]; }
  bool needs_read(int j) const { return j == 0 || present_; }
  // Starts the read of tensor q once its buffer is free; false (nothing started) when the buffer
  // still holds a tensor of a group not released, or (when not waiting) its write is in flight.
  bool start(int64_t q, bool wait);
  void quiesce();  // waits for every read and write (outside steps)
  uint64_t offset_of(int g) const { return uint64_t(g) * uint64_t(stride_); }

  std::string folder_;
  std::vector<std::string> names_;
  std::unique_ptr<io::AsyncIO> io_;
  std::vector<std::unique_ptr<io::AsyncFile>> files_;  // master, then the states
  std::vector<Tensor> buffers_;          // buffer_count of (stride / 4) f32, 4096-aligned
  std::vector<int64_t> occupant_;        // per buffer: the tensor q it holds this step (-1: from the last step)
  std::vector<io::Request> buffer_io_;   // per buffer: its last read or write
  std::vector<io::Request> reads_;       // per tensor q of this step
  int64_t stride_ = 0;                   // bytes between groups in a file, and each buffer's size
  int64_t next_ = 0;                     // the first tensor of this step whose read has not started
  int released_ = 0;                     // groups released this step
  bool present_ = false;                 // the states exist on disk
  bool in_step_ = false;
};

}  // namespace zt::engine
