#include "optimizer_offload.hpp"

#include <algorithm>

#include "optimizer_swapper.hpp"
#include "zt/core/env.hpp"
#include "zt/core/storage.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::engine {

namespace {

// [0, n) in pieces of at most `size` elements.
std::vector<zero::Range> split(int64_t n, int64_t size) {
  std::vector<zero::Range> out;
  for (int64_t b = 0; b < n; b += size) out.push_back({b, std::min(n, b + size)});
  if (out.empty()) out.push_back({0, 0});
  return out;
}

// Master and states for the whole partition in host memory. The CPU alone touches them (the
// tiles and the gradient copy are what cross to the device), so they are not pinned.
class HostStore : public OffloadStore {
 public:
  HostStore(int64_t partition, int64_t sub_group_size, const Tensor& initial, std::vector<std::string> names)
      : names_(std::move(names)) {
    groups_ = split(partition, std::max<int64_t>(1, sub_group_size));
    master_ = Tensor::empty({partition}, DType::f32);
    master_.copy_from(initial);
  }

  std::vector<std::string> states() const override {
    std::vector<std::string> out;
    for (const auto& n : names_)
      if (states_.count(n)) out.push_back(n);
    for (const auto& [n, t] : states_)  // a checkpoint's states the optimizer does not name
      if (std::find(names_.begin(), names_.end(), n) == names_.end()) out.push_back(n);
    return out;
  }
  Tensor master(int g) override { return slice(master_, g); }
  Tensor state(int g, const std::string& name) override { return slice(states_.at(name), g); }
  Tensor create_state(int g, const std::string& name, zero::Range) override {
    Tensor& t = states_[name];
    if (!t.defined()) t = Tensor::zeros(master_.shape(), DType::f32);  // every element is untouched yet
    return slice(t, g);
  }
  Tensor read(const std::string& name, int g) override {
    return slice(name == "master" ? master_ : states_.at(name), g);
  }
  Tensor load_target(const std::string& name, int g) override {
    return name == "master" ? slice(master_, g) : create_state(g, name, {});
  }
  void set_states(const std::vector<std::string>& names) override {
    for (auto it = states_.begin(); it != states_.end();)
      it = std::find(names.begin(), names.end(), it->first) == names.end() ? states_.erase(it) : std::next(it);
  }
  size_t master_bytes() const override { return master_.nbytes(); }
  size_t state_bytes() const override {
    size_t n = 0;
    for (const auto& [name, t] : states_) n += t.nbytes();
    return n;
  }
  std::string where() const override { return "host"; }

 private:
  Tensor slice(const Tensor& t, int g) const {
    const zero::Range r = groups_[size_t(g)];
    return t.view(size_t(r.begin), {r.size()});
  }
  std::vector<std::string> names_;
  Tensor master_;                         // (P) f32
  std::map<std::string, Tensor> states_;  // (P) f32 each, created at the first step
};

}  // namespace

Tensor offload_host_buffer(int64_t n, DType dtype, bool pinned) {
  return Tensor(Storage::allocate(size_t(n) * dtype_size(dtype), Device::cpu(), pinned), 0, {n}, dtype);
}

OptimizerOffload::OptimizerOffload(const OffloadSetup& setup, const Tensor& initial_master,
                                   const optim::Optimizer& optimizer)
    : setup_(setup), copies_(setup.device) {
  const int64_t p = setup.partition;
  ZT_CHECK(initial_master.numel() == p && initial_master.dtype() == DType::f32,
           "optimizer offload: the initial master weights are ", initial_master.describe(), ", expected f32 (", p, ")");
  if (setup.config.device == "nvme") {
    SwapSetup swap;
    swap.partition = p;
    swap.sub_group_size = setup.sub_group_size;
    swap.state_names = optimizer.state_names();
    swap.streams_targets = optimizer.streams_targets();
    swap.optimizer = optimizer.name();
    swap.nvme_path = setup.config.nvme_path;
    swap.rank = setup.rank;
    swap.buffer_count = setup.config.buffer_count;
    swap.aio = setup.aio;
    store_ = std::make_unique<NvmeStore>(swap, initial_master);
  } else {
    store_ = std::make_unique<HostStore>(p, setup.sub_group_size, initial_master, optimizer.state_names());
  }
  host_grads_ = offload_host_buffer(p, setup.grad_dtype, setup.pinned);
  host_grads_.zero_();
  // Tiles of whole 64-element vectors; a small partition is one tile.
  const int64_t wanted = std::max<int64_t>(64, setup.tile_bytes / int64_t(dtype_size(setup.param_dtype))) / 64 * 64;
  tile_elements_ = std::max<int64_t>(1, std::min(wanted, p));
  const int64_t count = std::max<int64_t>(1, setup.buffer_count);
  for (int64_t i = 0; i < count; ++i) tiles_.push_back(offload_host_buffer(tile_elements_, setup.param_dtype, setup.pinned));
  tile_tickets_.assign(tiles_.size(), 0);
}

OptimizerOffload::~OptimizerOffload() = default;

size_t OptimizerOffload::host_buffer_bytes() const {
  size_t n = host_grads_.nbytes() + store_->buffer_bytes();
  for (const Tensor& t : tiles_) n += t.nbytes();
  return n;
}

void OptimizerOffload::gradient_ready(const Tensor& grads, zero::Range r) {
  ZT_CHECK(grads.numel() == setup_.partition && grads.dtype() == setup_.grad_dtype,
           "optimizer offload: the reduced gradients are ", grads.describe(), ", expected ",
           dtype_name(setup_.grad_dtype), " (", setup_.partition, ")");
  copies_.after_compute();  // the reduction (and the add of earlier micro-batches) has written them
  copies_.copy(host_grads_.view(size_t(r.begin), {r.size()}), grads.view(size_t(r.begin), {r.size()}));
}

void OptimizerOffload::step(optim::Optimizer& optimizer, const std::vector<optim::Segment>& segments, double lr,
                            double grad_scale, const Tensor& params) {
  ZT_CHECK(!params.defined() || (params.numel() == setup_.partition && params.dtype() == setup_.param_dtype),
           "optimizer offload: the parameter partition is ", params.describe(), ", expected ",
           dtype_name(setup_.param_dtype), " (", setup_.partition, ")");
  copies_.synchronize();    // every gradient is down, and the previous step's tiles are free
  copies_.after_compute();  // the uploads come after the compute stream's last reads of the parameters
  OffloadStore& store = *store_;
  const auto& groups = store.groups();

  struct Tile {
    int group;
    zero::Range range;  // in the partition
    bool last_in_group;
  };
  std::vector<Tile> tiles;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto pieces = split(groups[g].size(), tile_elements_);
    for (size_t i = 0; i < pieces.size(); ++i)
      tiles.push_back({int(g), {groups[g].begin + pieces[i].begin, groups[g].begin + pieces[i].end},
                       i + 1 == pieces.size()});
  }
  const std::vector<std::string> present = store.states();
  std::vector<optim::ExternalStates> states(tiles.size());  // sized once: targets point into it
  std::vector<optim::StepTarget> targets;
  targets.reserve(tiles.size());
  size_t finished = 0;
  auto on_done = [&](size_t i) {
    const Tile& t = tiles[i];
    const size_t slot = i % tiles_.size();
    if (params.defined())
      tile_tickets_[slot] = copies_.copy(params.view(size_t(t.range.begin), {t.range.size()}), tile(int(slot), t.range.size()));
    store.pump();
    if (t.last_in_group) {
      store.release(t.group);
      if (size_t(t.group) + 1 < groups.size()) store.acquire(t.group + 1);
    }
    if (i + 1 < tiles.size()) copies_.wait(tile_tickets_[(i + 1) % tiles_.size()]);
    ++finished;
  };
  for (size_t i = 0; i < tiles.size(); ++i) {
    const Tile& t = tiles[i];
    const zero::Range group = groups[size_t(t.group)];
    const int64_t n = t.range.size(), at = t.range.begin - group.begin;  // at: within the group
    for (const auto& name : present) states[i].tensors[name] = store.state(t.group, name).view(size_t(at), {n});
    states[i].create = [&store, g = t.group, at, n](const std::string& name) {
      return store.create_state(g, name, {at, at + n}).view(size_t(at), {n});
    };
    optim::StepTarget target;
    target.id = int64_t(i);
    target.param = store.master(t.group).view(size_t(at), {n});
    target.grad = host_grads_.view(size_t(t.range.begin), {n});
    for (const optim::Segment& s : segments) {
      const zero::Range piece = zero::intersect({s.offset, s.offset + s.numel}, t.range);
      if (piece.size() > 0) target.segments.push_back({piece.begin - t.range.begin, piece.size(), s.key});
    }
    if (target.segments.empty() && !segments.empty()) target.segments.push_back({0, 0, -1});  // padding only
    target.param_out = tile(int(i % tiles_.size()), n);
    target.states = &states[i];
    target.done = [&on_done, i] { on_done(i); };
    targets.push_back(std::move(target));
  }
  store.begin_step();
  store.acquire(0);
  optimizer.step(targets, lr, grad_scale);
  ZT_CHECK(finished == targets.size(), optimizer.name(), " finished ", finished, " of the ", targets.size(),
           " offloaded targets (an optimizer must call done() for each)");
  store.end_step();
  copies_.before_compute();  // the next forward reads the parameters after they arrived
}

void OptimizerOffload::upload(const Tensor& params) {
  copies_.synchronize();
  copies_.after_compute();
  size_t slot = 0;
  for (size_t g = 0; g < store_->groups().size(); ++g) {
    const zero::Range group = store_->groups()[g];
    const Tensor master = store_->read("master", int(g));
    for (const zero::Range& piece : split(group.size(), tile_elements_)) {
      copies_.wait(tile_tickets_[slot]);
      const Tensor staged = tile(int(slot), piece.size());
      ops::cast(staged, master.view(size_t(piece.begin), {piece.size()}));
      tile_tickets_[slot] = copies_.copy(params.view(size_t(group.begin + piece.begin), {piece.size()}), staged);
      slot = (slot + 1) % tiles_.size();
    }
  }
  copies_.before_compute();
}

Tensor OptimizerOffload::master_copy() {
  Tensor out = Tensor::empty({setup_.partition}, DType::f32);
  for (size_t g = 0; g < store_->groups().size(); ++g) {
    const zero::Range r = store_->groups()[g];
    out.view(size_t(r.begin), {r.size()}).copy_from(store_->read("master", int(g)));
  }
  return out;
}

std::unique_ptr<OptimizerOffload> make_optimizer_offload(const Config& config, const zero::ZeroOptions& options,
                                                         int64_t partition, int rank, const Tensor& initial_master,
                                                         const optim::Optimizer& optimizer) {
  const OffloadConfig& c = config.zero.offload_optimizer;
  ZT_CHECK(c.device == "cpu" || c.device == "nvme", "zero_optimization.offload_optimizer.device = \"", c.device,
           "\" is not one of none, cpu, nvme");
  OffloadSetup s;
  s.partition = partition;
  s.grad_dtype = options.comm_dtype;
  s.param_dtype = options.storage_dtype;
  s.device = options.device;
  s.pinned = c.pin_memory && options.device.is_cuda();
  s.buffer_count = c.buffer_count;
  s.tile_bytes = env_int("ZT_OFFLOAD_TILE_BYTES", 64LL << 20);
  ZT_CHECK(s.tile_bytes > 0, "ZT_OFFLOAD_TILE_BYTES must be positive, got ", s.tile_bytes);
  s.sub_group_size = config.zero.sub_group_size;
  ZT_CHECK(s.sub_group_size > 0, "zero_optimization.sub_group_size must be positive with optimizer offload, got ",
           s.sub_group_size);
  s.rank = rank;
  s.config = c;
  s.aio = aio_options(config.aio);
  return std::make_unique<OptimizerOffload>(s, initial_master, optimizer);
}

io::AioOptions aio_options(const AioConfig& aio) {
  io::AioOptions o;
  o.block_size = aio.block_size;
  o.queue_depth = aio.queue_depth;
  o.thread_count = aio.thread_count;
  o.single_submit = aio.single_submit;
  o.overlap_events = aio.overlap_events;
  return o;
}

std::string offload_placement(const OptimizerOffload& offload, Device device) {
  const std::string where = offload.where();
  if (where != "host") return where;
  if (device.is_cpu()) return "cpu (host)";
  return offload.pinned() ? "host (pinned transfers)" : "host";
}

}  // namespace zt::engine
