#include "zt/zero/param_coordinator.hpp"

#include "param_fetcher.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::zero {

ParamCoordinator::ParamCoordinator(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options,
                                   DType compute_dtype, Tensor storage)
    : layout_(layout), group_(group), options_(options), compute_dtype_(compute_dtype), storage_(std::move(storage)),
      passthrough_(options.stage < 3 && compute_dtype == options.storage_dtype), slots_(layout.slots().size()) {
  init();
}

ParamCoordinator::ParamCoordinator(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options,
                                   DType compute_dtype, std::shared_ptr<ParamStore> store)
    : layout_(layout), group_(group), options_(options), compute_dtype_(compute_dtype), store_(std::move(store)),
      passthrough_(false), slots_(layout.slots().size()) {
  ZT_CHECK(options_.stage == 3 && store_, "a parameter store is for ZeRO stage 3 (the stage is ", options_.stage, ")");
  fetcher_ = std::make_unique<ParamFetcher>(layout_, group_, options_, *store_);
  init();
}

ParamCoordinator::~ParamCoordinator() = default;

void ParamCoordinator::init() {
  if (options_.stage == 3) {
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (layout_.slots()[s].numel >= options_.param_persistence_threshold) continue;
      slots_[s].persistent = true;
      start_gather(int(s));
    }
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].pending) finish_gather(int(s));
  }
  for (size_t s = 0; s < slots_.size(); ++s) {
    nn::Parameter& p = *layout_.slots()[s].param;
    p.data = Tensor();
    p.grad = Tensor();
    if (passthrough_ || slots_[s].persistent) set_data(int(s));
  }
}

std::vector<int> ParamCoordinator::module_slots(nn::Module& module) const {
  std::vector<int> out;
  for (const auto& [name, p] : module.own_parameters()) {
    const int s = layout_.slot_of(p.get());
    ZT_CHECK(s >= 0, module.type_name(), ".", name, " is not among the parameters the engine was built with");
    out.push_back(s);
  }
  return out;
}

Tensor ParamCoordinator::storage_view(int slot) {
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  if (options_.stage < 3) return storage_.view(size_t(s.offset), s.param->shape);
  const SlotState& state = slots_[size_t(slot)];
  ZT_CHECK(state.gathered.defined(), "parameter ", s.name, " used before it was gathered");
  return state.gathered.reshape(s.param->shape);
}

void ParamCoordinator::set_data(int slot) {
  nn::Parameter& p = *layout_.slots()[size_t(slot)].param;
  const Tensor view = storage_view(slot);
  if (compute_dtype_ == options_.storage_dtype) {
    p.data = view;
  } else {
    p.data = Tensor::empty(view.shape(), compute_dtype_, view.device());
    ops::cast(p.data, view);
  }
}

void ParamCoordinator::start_gather(int slot) {
  SlotState& state = slots_[size_t(slot)];
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  if (fetcher_) {
    state.gathered = fetcher_->start(slot);
  } else {
    const Range range{s.offset, s.offset + s.numel};
    const Range partition = layout_.partition(group_.rank());
    const Range mine = intersect(range, partition);
    const Tensor input = mine.size() ? storage_.view(size_t(mine.begin - partition.begin), {mine.size()})
                                     : Tensor::empty({0}, options_.storage_dtype, options_.device);
    state.gathered = Tensor::empty({s.numel}, options_.storage_dtype, options_.device);
    state.work = group_.all_gather_v(state.gathered, input, layout_.counts_by_rank(range));
  }
  state.pending = true;
  live_elements_ += s.numel;
  gathered_bytes_ += state.gathered.nbytes();
  gathered_peak_ = std::max(gathered_peak_, gathered_bytes_);
}

void ParamCoordinator::finish_gather(int slot) {
  SlotState& state = slots_[size_t(slot)];
  if (!state.pending) return;
  if (fetcher_) fetcher_->finish(slot);
  state.work.wait();
  state.work = comm::Work();
  state.pending = false;
}

void ParamCoordinator::drop(int slot) {
  SlotState& state = slots_[size_t(slot)];
  layout_.slots()[size_t(slot)].param->data = Tensor();
  if (options_.stage == 3 && !state.persistent && state.gathered.defined()) {
    finish_gather(slot);
    live_elements_ -= layout_.slots()[size_t(slot)].numel;
    gathered_bytes_ -= state.gathered.nbytes();
    state.gathered = Tensor();
  }
}

void ParamCoordinator::acquire(nn::Module& module) {
  if (passthrough_) return;
  auto& slots = module_slots_cache_[&module];
  if (slots.empty() && !module.own_parameters().empty()) slots = module_slots(module);
  if (slots.empty()) return;
  if (fetcher_) fetcher_->advance();
  // Follow the recorded order; a different order (another model path) stops prefetching.
  recording_.push_back(&module);
  if (trace_valid_) {
    if (trace_position_ < trace_.size() && trace_[trace_position_] == &module) {
      ++trace_position_;
    } else {
      trace_valid_ = false;
      ++trace_breaks_;
    }
  }
  for (int s : slots) {
    SlotState& state = slots_[size_t(s)];
    if (state.users++ > 0) continue;
    if (options_.stage == 3 && !state.persistent && !state.gathered.defined()) start_gather(s);
  }
  if (trace_valid_) prefetch_after(trace_position_);
  for (int s : slots) {
    finish_gather(s);
    if (!layout_.slots()[size_t(s)].param->data.defined()) set_data(s);
  }
}

void ParamCoordinator::prefetch_after(size_t position) {
  int64_t budget = options_.prefetch_bucket_size;
  for (size_t i = position; i < trace_.size() && budget > 0; ++i) {
    for (int s : module_slots_cache_[trace_[i]]) {
      SlotState& state = slots_[size_t(s)];
      if (state.gathered.defined() || state.persistent) continue;
      const int64_t n = layout_.slots()[size_t(s)].numel;
      if (n > budget || live_elements_ + n > options_.max_live_parameters) return;
      start_gather(s);
      budget -= n;
    }
  }
}

void ParamCoordinator::release(nn::Module& module) {
  if (passthrough_) return;
  auto it = module_slots_cache_.find(&module);
  if (it == module_slots_cache_.end()) return;
  for (int s : it->second) {
    SlotState& state = slots_[size_t(s)];
    ZT_CHECK(state.users > 0, module.type_name(), ": parameters released more often than acquired");
    if (--state.users > 0) continue;
    if (state.persistent && compute_dtype_ == options_.storage_dtype) continue;
    drop(s);
  }
}

void ParamCoordinator::write_partition(const Tensor& values) {
  ZT_CHECK(store_, "write_partition: the parameters are not in a parameter store");
  fetcher_->quiesce();
  store_->write(values);
}

size_t ParamCoordinator::fetch_buffer_bytes() const { return fetcher_ ? fetcher_->buffer_bytes() : 0; }

void ParamCoordinator::refresh() {
  if (options_.stage < 3) {
    if (passthrough_) return;  // views into the storage see the new values
    for (size_t s = 0; s < slots_.size(); ++s)
      if (slots_[s].users > 0) set_data(int(s));
    return;
  }
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].persistent) start_gather(int(s));
  for (size_t s = 0; s < slots_.size(); ++s) {
    if (!slots_[s].persistent) continue;
    finish_gather(int(s));
    live_elements_ -= layout_.slots()[s].numel;  // start_gather counted it again
    gathered_bytes_ = gathered_bytes_ >= slots_[s].gathered.nbytes() ? gathered_bytes_ - slots_[s].gathered.nbytes() : 0;
    // A compute-dtype copy that is still held (in use, or made at construction and not yet
    // released) must see the new values too.
    if (compute_dtype_ == options_.storage_dtype || slots_[s].users > 0 || layout_.slots()[s].param->data.defined())
      set_data(int(s));
  }
}

void ParamCoordinator::end_step() {
  if (passthrough_) return;
  // Prefetched parameters the step did not come to use go now.
  for (size_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].users == 0 && !slots_[s].persistent && slots_[s].gathered.defined()) drop(int(s));
  trace_ = recording_;
  recording_.clear();
  trace_position_ = 0;
  trace_valid_ = true;
}

size_t ParamCoordinator::persistent_bytes() const {
  size_t n = 0;
  for (const auto& s : slots_)
    if (s.persistent && s.gathered.defined()) n += s.gathered.nbytes();
  return n;
}

}  // namespace zt::zero
