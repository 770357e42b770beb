#include "zt/zero/grad_reducer.hpp"

#include <algorithm>

#include "zt/kernels/ops.hpp"

namespace zt::zero {

GradReducer::GradReducer(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options)
    : layout_(layout), group_(group), options_(options), buckets_(layout.buckets().size()),
      workspaces_(layout.slots().size()), unwritten_(layout.slots().size(), 0) {
  if (partitioned_grads()) {
    partition_ = Tensor::zeros({layout.partition_size()}, options.comm_dtype, options.device);
    return;
  }
  flat_ = Tensor::zeros({layout.total()}, options.comm_dtype, options.device);
  // The small slots (biases, norm weights) cleared by one launch a window; neighbours in the
  // layout join one range (with the alignment padding between them, which holds no gradient).
  std::vector<int64_t> ranges;
  bool previous_small = false;
  for (const ParamSlot& s : layout.slots()) {
    const bool small = s.numel < kMarkedSlotElements;
    if (small && previous_small) ranges.back() = s.offset + s.numel;
    else if (small) ranges.insert(ranges.end(), {s.offset, s.offset + s.numel});
    previous_small = small;
  }
  Tensor host = Tensor::empty({int64_t(ranges.size() / 2), 2}, DType::i64);
  std::copy(ranges.begin(), ranges.end(), host.data<int64_t>());
  small_ranges_ = host.to(options.device);
}

Tensor GradReducer::bucket_storage(int bucket) {
  BucketState& state = buckets_[size_t(bucket)];
  if (!state.staging.defined()) {
    const Range range = layout_.buckets()[size_t(bucket)].range;
    state.staging = Tensor::zeros({range.size()}, options_.comm_dtype, options_.device);
    bucket_bytes_now_ += state.staging.nbytes();
    bucket_peak_ = std::max(bucket_peak_, bucket_bytes_now_);
  }
  return state.staging;
}

Tensor GradReducer::slot_storage(int slot) {
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  if (!partitioned_grads()) return flat_.view(size_t(s.offset), s.param->shape);
  const Range range = layout_.buckets()[size_t(s.bucket)].range;
  return bucket_storage(s.bucket).view(size_t(s.offset - range.begin), s.param->shape);
}

void GradReducer::begin_backward(bool boundary) {
  boundary_ = boundary;
  marked_ = false;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    ZT_CHECK(!buckets_[b].in_flight, "gradient bucket ", b, " is still being reduced at the next backward");
    buckets_[b].pending = int(layout_.buckets()[b].slots.size());
  }
}

Tensor GradReducer::grad_destination(int slot, DType compute_dtype) {
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  Tensor& workspace = workspaces_[size_t(slot)];
  if (workspace.defined()) return workspace;  // a tied parameter asks once per use
  if (compute_dtype != options_.comm_dtype) {
    workspace = Tensor::zeros(s.param->shape, compute_dtype, options_.device);
    return workspace;
  }
  if (unwritten_[size_t(slot)]) {
    // The parameter takes over the slot's state: its first backward writes the slot (a tied
    // parameter's second use then finds it written).
    s.param->grad_unwritten = true;
    unwritten_[size_t(slot)] = 0;
  }
  return slot_storage(slot);
}

void GradReducer::grad_ready(int slot) {
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  Tensor& workspace = workspaces_[size_t(slot)];
  if (workspace.defined()) {
    // Fold the compute-dtype gradient into its place in the comm-dtype buffer (its first one
    // this window written over what the buffer holds).
    if (unwritten_[size_t(slot)]) ops::cast(slot_storage(slot), workspace);
    else ops::add_(slot_storage(slot), workspace);
    unwritten_[size_t(slot)] = 0;
    workspace = Tensor();
  } else if (s.param->grad_unwritten) {
    clear_slot(slot);  // its module's backward made no gradient of it
  }
  if (!boundary_ && !partitioned_grads()) return;  // stages 0, 1 reduce once per step
  BucketState& state = buckets_[size_t(s.bucket)];
  ZT_CHECK(state.pending > 0, "gradient of ", s.name, " reported ready twice in one backward");
  if (--state.pending == 0) launch(s.bucket);
}

void GradReducer::launch(int bucket) {
  BucketState& state = buckets_[size_t(bucket)];
  const Range range = layout_.buckets()[size_t(bucket)].range;
  const int rank = group_.rank();
  if (group_.size() == 1 && options_.stage <= 1) {
    // One rank: the sum over the group is the buffer as it is (stage 1's part is all of it).
    state.work = comm::Work();
  } else if (options_.stage == 0) {
    state.work = group_.all_reduce(flat_.view(size_t(range.begin), {range.size()}));
  } else {
    const std::vector<int64_t> counts = layout_.counts_by_rank(range);
    int64_t displacement = 0;
    for (int r = 0; r < rank; ++r) displacement += counts[size_t(r)];
    const int64_t mine = counts[size_t(rank)];
    if (options_.stage == 1) {
      // In place: this rank's sum lands where its own part of the bucket was.
      const Tensor input = flat_.view(size_t(range.begin), {range.size()});
      state.work = group_.reduce_scatter_v(input.view(size_t(displacement), {mine}), input, counts);
    } else {
      const Tensor input = bucket_storage(bucket);
      const int64_t at = range.begin + displacement - layout_.partition(rank).begin;
      Tensor output = first_micro_batch_ && mine > 0 ? partition_.view(size_t(at), {mine})
                                                     : Tensor::empty({mine}, options_.comm_dtype, options_.device);
      if (!first_micro_batch_) state.received = output;
      state.work = group_.reduce_scatter_v(output, input, counts);
    }
  }
  state.in_flight = true;
  in_flight_.push_back(bucket);
  if (!options_.overlap_comm) complete(bucket);
  else if (reduced_hook_ && boundary_) complete_finished();
}

void GradReducer::complete_finished() {
  const std::vector<int> launched = in_flight_;
  for (int b : launched)
    if (buckets_[size_t(b)].work.is_completed()) complete(b);
}

void GradReducer::complete(int bucket) {
  BucketState& state = buckets_[size_t(bucket)];
  if (!state.in_flight) return;
  state.work.wait();
  state.in_flight = false;
  state.work = comm::Work();
  in_flight_.erase(std::find(in_flight_.begin(), in_flight_.end(), bucket));
  const Range range = layout_.buckets()[size_t(bucket)].range;
  const Range part = layout_.partition(group_.rank());
  const Range mine = intersect(range, part);
  if (state.received.defined() && mine.size() > 0) {
    ops::add_(partition_.view(size_t(mine.begin - part.begin), {mine.size()}), state.received);
    state.received = Tensor();
  }
  if (reduced_hook_ && boundary_) {
    const Range final_range = options_.stage == 0 ? range : Range{mine.begin - part.begin, mine.end - part.begin};
    if (final_range.size() > 0) reduced_hook_(final_range);
  }
  if (state.staging.defined()) {
    bucket_bytes_now_ -= state.staging.nbytes();
    state.staging = Tensor();
  }
}

void GradReducer::finish_backward() {
  if (boundary_) clear_unwritten();  // what no backward of the window wrote is zero
  if (boundary_ || partitioned_grads()) {
    // A parameter the forward did not use has no gradient event: its bucket goes out now,
    // with zeros in that parameter's place.
    for (size_t b = 0; b < buckets_.size(); ++b)
      if (buckets_[b].pending > 0 && !buckets_[b].in_flight) {
        buckets_[b].pending = 0;
        launch(int(b));
      }
  }
  for (size_t b = 0; b < buckets_.size(); ++b) complete(int(b));
  if (partitioned_grads()) first_micro_batch_ = false;
}

Tensor GradReducer::gradients() const {
  if (partitioned_grads()) return partition_;
  clear_unwritten();
  if (options_.stage == 0) return flat_;
  const Range mine = layout_.partition(group_.rank());
  return flat_.view(size_t(mine.begin), {mine.size()});
}

void GradReducer::zero() {
  if (partitioned_grads()) {
    first_micro_batch_ = true;
    return;
  }
  if (marked_) return;  // no backward since the last zero()
  marked_ = true;
  // The large slots are marked: the window's first gradient of each is written over it, and
  // what no backward wrote is cleared at the window's end (or when read before). The small ones
  // are cleared now, together.
  for (size_t i = 0; i < unwritten_.size(); ++i) {
    const ParamSlot& s = layout_.slots()[i];
    unwritten_[i] = s.numel >= kMarkedSlotElements;
    s.param->grad_unwritten = false;
  }
  ops::zero_ranges(flat_, small_ranges_);
}

void GradReducer::zero_ahead() {
  if (!partitioned_grads()) zero();
}

void GradReducer::backward_replayed() {
  marked_ = false;  // as the replayed backward's begin_backward would have left it
  std::fill(unwritten_.begin(), unwritten_.end(), char(0));
  for (const ParamSlot& s : layout_.slots()) s.param->grad_unwritten = false;
}

void GradReducer::clear_slot(int slot) const {
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  flat_.view(size_t(s.offset), s.param->shape).zero_();
  unwritten_[size_t(slot)] = 0;
  s.param->grad_unwritten = false;
}

// Called once the window's backwards are done (or when the gradients are read): a slot still
// marked, or handed to its parameter and not written, holds no gradient of the window.
void GradReducer::clear_unwritten() const {
  if (partitioned_grads()) return;
  for (size_t i = 0; i < unwritten_.size(); ++i) {
    const ParamSlot& s = layout_.slots()[i];
    if (unwritten_[i] || s.param->grad_unwritten) clear_slot(int(i));
  }
}

size_t GradReducer::gradient_bytes() const { return partitioned_grads() ? partition_.nbytes() : flat_.nbytes(); }

}  // namespace zt::zero
