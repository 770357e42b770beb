// The parameter coordinator: makes a module's parameters readable just before it runs and
// lets them go after.
//
// Stage 3 keeps only this rank's partition of the parameters; before a module's forward (and
// again before its backward) its parameters are all-gathered, and released after. Parameters
// below the persistence threshold stay whole. After the first step the coordinator knows the
// order in which modules run and prefetches the parameters of the modules that come next,
// up to the prefetch bucket size, never holding more than max_live_parameters gathered.
//
// With offload_param the partition lives in a ParamStore (host memory or an NVMe file): a
// gather then starts with this rank's piece coming to the device (ParamFetcher, on a copy
// stream), prefetched the same way.
//
// Where the compute dtype differs from the storage dtype (bf16/f16 storage computed in f32 on
// CPU ranks), the coordinator also materializes each module's parameters in the compute
// dtype for the duration of its use.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "zt/comm/process_group.hpp"
#include "zt/zero/flat_layout.hpp"
#include "zt/zero/options.hpp"
#include "zt/zero/param_store.hpp"

namespace zt::zero {

class ParamFetcher;  // src/zero/param_fetcher.hpp

class ParamCoordinator {
 public:
  // storage: the full flat parameters (stages 0-2) or this rank's partition (stage 3), in the
  // storage dtype.
  ParamCoordinator(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options,
                   DType compute_dtype, Tensor storage);
  // Stage 3 with the partition in `store` (offload_param).
  ParamCoordinator(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options,
                   DType compute_dtype, std::shared_ptr<ParamStore> store);
  ~ParamCoordinator();
  ParamCoordinator(const ParamCoordinator&) = delete;
  ParamCoordinator& operator=(const ParamCoordinator&) = delete;

  void acquire(nn::Module& module);
  void release(nn::Module& module);
  // offload_param: stores `values` (this rank's partition, f32) into the store, rounded to the
  // storage dtype, once no fetch reads it. refresh() follows.
  void write_partition(const Tensor& values);
  // After the optimizer wrote new values into the storage: refresh what is kept whole.
  void refresh();
  // Ends a step: the module order seen becomes the prefetch plan.
  void end_step();

  bool is_passthrough() const { return passthrough_; }  // nothing to do per module
  size_t persistent_bytes() const;
  size_t gathered_peak_bytes() const { return gathered_peak_; }
  int64_t live_elements() const { return live_elements_; }
  // Steps (micro-batches) whose modules left the order of the one before, which stops prefetching
  // for the rest of that step: 0 after the first step when every step runs the same way.
  int64_t trace_breaks() const { return trace_breaks_; }
  size_t fetch_buffer_bytes() const;  // offload_param: staging and read buffers held

 private:
  struct SlotState {
    int users = 0;          // acquisitions not yet released
    Tensor gathered;        // stage 3: the whole parameter (storage dtype)
    comm::Work work;        // a gather in flight
    bool pending = false;
    bool persistent = false;
  };
  void init();
  std::vector<int> module_slots(nn::Module& module) const;
  void start_gather(int slot);
  void finish_gather(int slot);
  void prefetch_after(size_t trace_position);
  Tensor storage_view(int slot);
  void set_data(int slot);
  void drop(int slot);

  const FlatLayout& layout_;
  comm::ProcessGroup& group_;
  ZeroOptions options_;
  DType compute_dtype_;
  Tensor storage_;                          // in memory on the compute device, or undefined with a store
  std::shared_ptr<ParamStore> store_;       // offload_param
  std::unique_ptr<ParamFetcher> fetcher_;   // offload_param
  bool passthrough_;
  std::vector<SlotState> slots_;
  std::map<const nn::Module*, std::vector<int>> module_slots_cache_;
  std::vector<const nn::Module*> trace_, recording_;
  size_t trace_position_ = 0;
  bool trace_valid_ = false;
  int64_t trace_breaks_ = 0;
  int64_t live_elements_ = 0;
  size_t gathered_bytes_ = 0, gathered_peak_ = 0;
};

}  // namespace zt::zero
