// The gradient reducer: collects each parameter's gradient into its bucket as backward makes
// it ready, and reduces full buckets across the data-parallel group while backward goes on.
//
//   stage 0: gradients live in a full flat buffer; at the accumulation boundary each full
//            bucket is all-reduced in place.
//   stage 1: as stage 0, but each bucket is reduce-scattered in place: a rank keeps the sum
//            only over its own partition of the flat buffer.
//   stage 2, 3: gradients live in bucket-sized staging buffers that exist only while their
//            bucket fills; every micro-batch, a full bucket is reduce-scattered and added into
//            this rank's gradient partition, and the staging buffer is freed.
// Reductions are sums; the engine divides by the world size when it steps.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "zt/comm/process_group.hpp"
#include "zt/zero/flat_layout.hpp"
#include "zt/zero/options.hpp"

namespace zt::zero {

class GradReducer {
 public:
  GradReducer(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options);

  // Before each micro-batch's backward; boundary: the last micro-batch before a step.
  void begin_backward(bool boundary);
  // The tensor a parameter's gradient accumulates into during this backward (full shape), in
  // the compute dtype: a view into the flat or staging buffer, or a workspace that
  // grad_ready() folds in.
  Tensor grad_destination(int slot, DType compute_dtype);
  // The parameter's gradient is complete for this micro-batch.
  void grad_ready(int slot);
  // Waits for every reduction of this backward; afterwards gradients() holds the sums.
  void finish_backward();
  // Called at the accumulation boundary as each bucket's reduction completes (with overlap_comm,
  // as soon as it is seen complete, while backward goes on), with the range of gradients() that
  // is now final, in its own coordinates: the optimizer offload copies it down there and then.
  // Every element of gradients() is in exactly one such range per boundary.
  using ReducedHook = std::function<void(Range)>;
  void set_reduced_hook(ReducedHook hook) { reduced_hook_ = std::move(hook); }

  // This rank's reduced gradients: the full flat buffer (stage 0) or its partition (1-3).
  Tensor gradients() const;
  // Before a new accumulation window. Stages 0, 1 clear only the small slots (in one launch):
  // each larger parameter's slot is marked, the window's first gradient of it is written over it
  // (Parameter::grad_unwritten), and what no backward wrote is cleared when the window's last
  // backward finishes (or gradients() is read before). Again before a backward: nothing.
  void zero();
  // Slots of at least this many elements are marked rather than cleared: GPT-2's and Llama's
  // weight matrices and embeddings; not their biases and norm weights, whose clearing one by one
  // would cost a launch each.
  static constexpr int64_t kMarkedSlotElements = int64_t(1) << 16;
  // After a step: the same as zero() (stages 0, 1), for the next window.
  void zero_ahead();
  // The window's backwards ran as a CUDA graph's replay, whose kernels wrote every slot as the
  // captured ones did; the host side of the marks is brought to where the capture left it.
  void backward_replayed();
  size_t gradient_bytes() const;
  size_t bucket_peak_bytes() const { return bucket_peak_; }

 private:
  struct BucketState {
    int pending = 0;     // parameters whose gradient is not ready yet
    Tensor staging;      // stages 2, 3: (range.size()) in comm dtype
    comm::Work work;
    Tensor received;     // stages 2, 3: this rank's reduced part, before it is added
    bool in_flight = false;
  };
  void launch(int bucket);
  void complete(int bucket);
  void complete_finished();  // completes the in-flight buckets whose reduction has finished
  Tensor bucket_storage(int bucket);
  Tensor slot_storage(int slot);  // where a parameter's gradient lives in the comm-dtype buffers
  bool partitioned_grads() const { return options_.stage >= 2; }

  const FlatLayout& layout_;
  comm::ProcessGroup& group_;
  ZeroOptions options_;
  Tensor flat_;        // stages 0, 1: (total) in comm dtype
  Tensor partition_;   // stages 2, 3: (partition_size) in comm dtype
  std::vector<BucketState> buckets_;
  std::vector<Tensor> workspaces_;  // per slot, when the compute dtype differs from the comm dtype
  bool boundary_ = true;
  bool first_micro_batch_ = true;   // stages 2, 3: the partition is overwritten, not added to
  size_t bucket_bytes_now_ = 0, bucket_peak_ = 0;
  ReducedHook reduced_hook_;
  std::vector<int> in_flight_;  // buckets launched and not completed, in launch order
  // Stages 0, 1: per slot, whether it holds no gradient of this window and has not been handed
  // to its parameter (grad_destination moves the mark to Parameter::grad_unwritten).
  mutable std::vector<char> unwritten_;
  Tensor small_ranges_;  // (R, 2) i64 on the device: the small slots' [begin, end), neighbours joined
  bool marked_ = false;  // zero() ran and no backward began since
  void clear_slot(int slot) const;   // zeros, and no longer marked
  void clear_unwritten() const;      // clear_slot for each slot still marked here or on its parameter
};

}  // namespace zt::zero
