#include "param_fetcher.hpp"

#include "param_store_parts.hpp"

namespace zt::zero {

namespace {

// Collectives issued while it lives are ordered after the fetch stream's copies (NCCL waits
// for an event recorded on the group's stream).
class GroupStream {
 public:
  GroupStream(comm::ProcessGroup& group, void* stream) : group_(group), previous_(group.cuda_stream()) {
    group_.set_cuda_stream(stream);
  }
  ~GroupStream() { group_.set_cuda_stream(previous_); }
  GroupStream(const GroupStream&) = delete;
  GroupStream& operator=(const GroupStream&) = delete;

 private:
  comm::ProcessGroup& group_;
  void* previous_;
};

Range slot_range(const ParamSlot& s) { return {s.offset, s.offset + s.numel}; }

}  // namespace

ParamFetcher::ParamFetcher(const FlatLayout& layout, comm::ProcessGroup& group, const ZeroOptions& options,
                           ParamStore& store)
    : layout_(layout), group_(group), store_(store), dtype_(options.storage_dtype), pinned_(pinned_for(options)),
      world_(group.size()), stream_(options.device) {
  ZT_CHECK(store.dtype() == dtype_ && store.size() == layout.partition_size(), "parameter fetcher: the store holds ",
           store.size(), " ", dtype_name(store.dtype()), " elements, the partition is ", layout.partition_size(), " ",
           dtype_name(dtype_));
  const bool staged = world_ > 1, bounced = !store.memory().defined();
  if (!staged && !bounced) return;  // one rank, host memory: each piece is copied straight into place
  const ParamOffloadOptions& o = options.offload_param;
  // Sized by the largest piece on any rank, so that every rank sizes (and checks) alike.
  const ParamSlot* largest = nullptr;
  int holder = 0;
  for (int r = 0; r < world_; ++r)
    for (const ParamSlot& s : layout.slots()) {
      const int64_t n = intersect(slot_range(s), layout.partition(r)).size();
      if (n > piece_max_) {
        piece_max_ = n;
        largest = &s;
        holder = r;
      }
    }
  ZT_CHECK(o.buffer_count >= 1, "zero_optimization.offload_param.buffer_count = ", o.buffer_count, ": fetching ",
           bounced ? "parameters from the NVMe file" : "offloaded parameters across ranks",
           " goes through buffers; give at least 1 (DeepSpeed's default is 5)");
  ZT_CHECK(piece_max_ <= o.buffer_size, "zero_optimization.offload_param.buffer_size = ", o.buffer_size,
           " elements is smaller than rank ", holder, "'s piece of parameter '", largest ? largest->name : "",
           "' (", piece_max_, " elements); each fetch goes through one buffer, so set buffer_size to at least ",
           piece_max_);
  buffer_count_ = o.buffer_count;
  if (staged) staging_.resize(size_t(buffer_count_));
  if (bounced) bounce_.resize(size_t(buffer_count_));
}

ParamFetcher::~ParamFetcher() {
  // Reads and copies still in flight use buffers that go with this object.
  for (auto& [slot, f] : fetches_) {
    try {
      if (f.bounce >= 0) store_.wait(f.read);
    } catch (...) {
    }
  }
  try {
    stream_.synchronize();
  } catch (...) {
  }
}

Tensor ParamFetcher::start(int slot) {
  ZT_CHECK(fetches_.count(slot) == 0, "parameter ", layout_.slots()[size_t(slot)].name, " fetched twice at once");
  const ParamSlot& s = layout_.slots()[size_t(slot)];
  const Range partition = layout_.partition(group_.rank());
  const Range mine = intersect(slot_range(s), partition);
  Fetch& f = fetches_[slot];
  f.begin = mine.begin - partition.begin;
  f.count = mine.size();
  f.gathered = stream_.empty(s.numel, dtype_);
  if (bounce_.empty()) {
    // Nothing to read: copied (and gathered) at once, in order.
    queue_.push_back(slot);
    issue_through(slot);
    return f.gathered;
  }
  // Every fetch takes its turn in the read buffers, also one without a piece here, so that the
  // turns (and the issues a full ring forces) fall alike on every rank.
  f.bounce = take_bounce(slot);
  if (f.count > 0) f.read = store_.read(f.begin, bounce_[size_t(f.bounce)].data.view(0, {f.count}));
  queue_.push_back(slot);
  return f.gathered;
}

void ParamFetcher::issue_through(int slot) {
  if (fetches_.at(slot).issued) return;
  while (!queue_.empty()) {
    const int head = queue_.front();
    Fetch& f = fetches_.at(head);
    if (f.bounce >= 0) store_.wait(f.read);
    issue(head, f);
    queue_.pop_front();
    if (head == slot) return;
  }
}

void ParamFetcher::issue(int slot, Fetch& f) {
  size_t staging = 0;
  Tensor dst = f.gathered;
  if (world_ > 1) {
    if (f.count > 0) {
      staging = take_staging();
      dst = staging_[staging].data.view(0, {f.count});
    } else {
      dst = stream_.empty(0, dtype_);
    }
  }
  if (f.count > 0) {
    const Tensor src = f.bounce >= 0 ? bounce_[size_t(f.bounce)].data.view(0, {f.count})
                                     : store_.memory().view(size_t(f.begin), {f.count});
    stream_.copy(dst, src);
  }
  if (f.bounce >= 0) {
    Buffer& b = bounce_[size_t(f.bounce)];
    b.released = stream_.record();
    b.owner = -1;
    f.bounce = -1;
  }
  if (world_ == 1) {
    f.copied = stream_.record();
  } else {
    const ParamSlot& s = layout_.slots()[size_t(slot)];
    GroupStream on_fetch_stream(group_, stream_.handle());
    f.work = group_.all_gather_v(f.gathered, dst, layout_.counts_by_rank(slot_range(s)));
    if (f.count > 0) staging_[staging].reader = f.work;
  }
  f.issued = true;
}

size_t ParamFetcher::take_staging() {
  const size_t i = next_staging_++ % staging_.size();
  Buffer& b = staging_[i];
  if (!b.data.defined()) {
    b.data = stream_.empty(piece_max_, dtype_);
  } else {
    // The copy into it waits (on the device) for the gather that read it last.
    b.reader.synchronize_stream(stream_.handle());
    b.reader = comm::Work();
  }
  return i;
}

int ParamFetcher::take_bounce(int slot) {
  const size_t j = next_bounce_++ % bounce_.size();
  Buffer& b = bounce_[j];
  if (b.owner >= 0) issue_through(b.owner);  // its piece must be copied out first, in order
  if (!b.data.defined()) {
    b.data = host_tensor(piece_max_, dtype_, pinned_);
  } else {
    stream_.host_waits(b.released);
  }
  b.owner = slot;
  return int(j);
}

void ParamFetcher::finish(int slot) {
  auto it = fetches_.find(slot);
  ZT_CHECK(it != fetches_.end(), "parameter ", layout_.slots()[size_t(slot)].name, " finished but never fetched");
  issue_through(slot);
  Fetch& f = it->second;
  if (world_ == 1) {
    stream_.compute_waits(f.copied);
  } else {
    f.work.wait();
    f.work.synchronize_stream(stream_.compute_handle());
  }
  fetches_.erase(it);
}

void ParamFetcher::advance() {
  if (!queue_.empty()) issue_through(queue_.back());
}

void ParamFetcher::quiesce() {
  ZT_CHECK(fetches_.empty(), "the offloaded parameters are written while ", fetches_.size(),
           " fetches are still in flight (a step inside a forward or backward?)");
  stream_.synchronize();
}

size_t ParamFetcher::buffer_bytes() const {
  size_t n = 0;
  for (const auto* buffers : {&staging_, &bounce_})
    for (const Buffer& b : *buffers) n += b.data.defined() ? b.data.nbytes() : 0;
  return n;
}

}  // namespace zt::zero
