// Optimizer offload (docs/ARCHITECTURE.md, "Optimizer offload"): this rank's f32 master weights and
// optimizer states live off the device (host memory, or files on NVMe with a few buffers), the
// optimizer steps on the host, gradients come down and parameters go up through a copy stream.
//
//   backward, at the accumulation boundary: each bucket's reduced range of the gradient partition
//            is copied down (storage dtype, pinned host memory) as soon as its reduction completes
//   step:    the partition is stepped tile by tile (T elements, buffer_count tiles of staging):
//            the optimizer reads the storage-dtype gradients, updates master and states, and writes
//            the parameters rounded to the storage dtype into the tile, which goes up while the
//            next tile steps. Tiles lie within groups (sub_group_size elements): the NVMe store
//            brings a group's master and states in before its first tile and writes them out
//            after its last, reading the next groups ahead into the buffers that are free.
//
// Letters: P = this rank's partition (elements), T = tile elements, S = sub_group_size.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zt/core/copy_stream.hpp"
#include "zt/core/tensor.hpp"
#include "zt/engine/config.hpp"
#include "zt/io/async_file.hpp"
#include "zt/optim/optimizer.hpp"
#include "zt/zero/flat_layout.hpp"
#include "zt/zero/options.hpp"

namespace zt::engine {

// Where the master weights and optimizer states live. Groups tile [0, P); a step goes through them
// in order: acquire(g), the optimizer on views of g, release(g).
class OffloadStore {
 public:
  virtual ~OffloadStore() = default;
  const std::vector<zero::Range>& groups() const { return groups_; }
  // The optimizer states that exist (none before the first step), in the optimizer's order.
  virtual std::vector<std::string> states() const = 0;
  // Views of group g (valid data once acquire(g) returned): the master (n_g) and an existing state.
  virtual Tensor master(int g) = 0;
  virtual Tensor state(int g, const std::string& name) = 0;
  // A state the optimizer creates: group g's (n_g) view, zeroed in `within` (group-relative).
  virtual Tensor create_state(int g, const std::string& name, zero::Range within) = 0;
  virtual void begin_step() {}
  virtual void acquire(int g) {}
  virtual void pump() {}  // called between tiles: starts reads whose buffers have become free
  virtual void release(int g) {}
  virtual void end_step() {}
  // Checkpoints and exports, outside steps. read: group g of "master" or a state as host f32
  // (n_g), valid until the next call. load_target: a host f32 (n_g) to fill with group g of
  // `name`, then commit_load(name, g) keeps it.
  virtual Tensor read(const std::string& name, int g) = 0;
  virtual Tensor load_target(const std::string& name, int g) = 0;
  virtual void commit_load(const std::string& name, int g) {}
  // After a load: which states now exist (empty: the checkpoint had none).
  virtual void set_states(const std::vector<std::string>& names) = 0;
  virtual size_t master_bytes() const = 0;  // resident in host memory
  virtual size_t state_bytes() const = 0;
  virtual size_t buffer_bytes() const { return 0; }  // swap buffers
  virtual size_t disk_bytes() const { return 0; }
  virtual std::string where() const = 0;  // "host (pinned)", "nvme (/path)"

 protected:
  std::vector<zero::Range> groups_;
};

struct OffloadSetup {
  int64_t partition = 0;              // P
  DType grad_dtype = DType::f32;      // the reduced gradients' dtype
  DType param_dtype = DType::f32;     // the parameter storage dtype
  Device device = Device::cpu();      // where parameters and gradients live
  bool pinned = false;                // pin host buffers (pin_memory on a GPU)
  int64_t buffer_count = 4;           // staging tiles (and NVMe swap buffers)
  int64_t tile_bytes = 64 << 20;      // ZT_OFFLOAD_TILE_BYTES
  int64_t sub_group_size = 1000000000;
  int rank = 0;
  OffloadConfig config;               // zero_optimization.offload_optimizer (device cpu or nvme)
  io::AioOptions aio;                 // nvme: the aio section
};

class OptimizerOffload {
 public:
  // initial_master (P) f32 on any device; optimizer gives the state names and the streaming
  // property the NVMe store relies on.
  OptimizerOffload(const OffloadSetup& setup, const Tensor& initial_master, const optim::Optimizer& optimizer);
  ~OptimizerOffload();

  // The gradient reducer's hook: grads (P) in grad_dtype, r of it final; copied down now.
  void gradient_ready(const Tensor& grads, zero::Range r);
  // One step of the optimizer over the partition; params (P) storage dtype (device or host)
  // receive the update (ordered before later work on the compute stream), or nothing does when
  // params is undefined (the caller takes the master weights itself: offload_param's store). segments: each
  // parameter's piece of the partition, for per-tensor optimizers.
  void step(optim::Optimizer& optimizer, const std::vector<optim::Segment>& segments, double lr, double grad_scale,
            const Tensor& params);
  // params (P) from the master weights (after a checkpoint load).
  void upload(const Tensor& params);
  // The whole master partition (P) as host f32 (exports, comparisons).
  Tensor master_copy();

  OffloadStore& store() { return *store_; }
  const OffloadStore& store() const { return *store_; }
  size_t host_buffer_bytes() const;  // gradient copy and staging tiles (and swap buffers)
  std::string where() const { return store_->where(); }
  bool pinned() const { return setup_.pinned; }

 private:
  Tensor tile(int slot, int64_t n) const { return tiles_[size_t(slot)].view(0, {n}); }

  OffloadSetup setup_;
  std::unique_ptr<OffloadStore> store_;
  CopyStream copies_;
  Tensor host_grads_;               // (P) grad_dtype: the reduced gradients, copied down per bucket
  std::vector<Tensor> tiles_;       // buffer_count of (T) param_dtype: parameters on their way up
  std::vector<CopyStream::Ticket> tile_tickets_;
  int64_t tile_elements_ = 0;       // T
};

// DeepSpeed's aio section as the file layer takes it (the NVMe stores of optimizer and parameters).
io::AioOptions aio_options(const AioConfig& aio);

// A host buffer of n elements, pinned when asked (page-locked memory for asynchronous copies).
Tensor offload_host_buffer(int64_t n, DType dtype, bool pinned);

// The engine's offload from its config: offload_optimizer's device, pin_memory and buffer_count,
// sub_group_size, the tile size ZT_OFFLOAD_TILE_BYTES (64 MiB).
std::unique_ptr<OptimizerOffload> make_optimizer_offload(const Config& config, const zero::ZeroOptions& options,
                                                         int64_t partition, int rank, const Tensor& initial_master,
                                                         const optim::Optimizer& optimizer);
// "host (pinned transfers)", "cpu (host)" on CPU ranks, "nvme /path/..." for the placement line.
std::string offload_placement(const OptimizerOffload& offload, Device device);

}  // namespace zt::engine
