#include "optimizer_swapper.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "zt/core/log.hpp"
#include "zt/core/storage.hpp"

namespace zt::engine {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPathKey = "zero_optimization.offload_optimizer.nvme_path";

// The rank's folder under nvme_path, created; a zt::Error naming nvme_path when it cannot be.
std::string make_rank_folder(const std::string& nvme_path, int rank) {
  std::error_code ec;
  ZT_CHECK(fs::exists(nvme_path, ec), kPathKey, " = \"", nvme_path,
           "\": no such folder (create it on the NVMe drive, or point nvme_path at one)");
  ZT_CHECK(fs::is_directory(nvme_path, ec), kPathKey, " = \"", nvme_path, "\" is not a folder");
  const fs::path folder = fs::path(nvme_path) / ("zt_optimizer_rank" + std::to_string(rank) + "_pid" + std::to_string(::getpid()));
  fs::remove_all(folder, ec);  // a folder of this rank and process id can only be a dead run's
  ZT_CHECK(fs::create_directory(folder, ec) && !ec, kPathKey, " = \"", nvme_path, "\" is not writable: cannot create ",
           folder.string(), ": ", ec.message());
  return folder.string();
}

}  // namespace

NvmeStore::NvmeStore(const SwapSetup& setup, const Tensor& initial_master) : names_(setup.state_names) {
  const int64_t p = setup.partition;
  ZT_CHECK(setup.sub_group_size > 0, "zero_optimization.sub_group_size must be positive, got ", setup.sub_group_size);
  for (int64_t b = 0; b < p; b += setup.sub_group_size) groups_.push_back({b, std::min(p, b + setup.sub_group_size)});
  if (groups_.empty()) groups_.push_back({0, 0});
  ZT_CHECK(setup.buffer_count >= tensors(), "zero_optimization.offload_optimizer.buffer_count = ", setup.buffer_count,
           ": NVMe offload needs at least ", tensors(), " buffers for ", setup.optimizer,
           " (the master weights and the optimizer's ", names_.size(), " state(s) of one sub-group); ", 2 * tensors(),
           " also read the next sub-group while one steps");
  ZT_CHECK(setup.streams_targets || groups_.size() == 1, setup.optimizer,
           " reads every part of the partition before it updates any (its trust ratio needs whole-tensor norms), so "
           "with NVMe offload the partition must be one sub-group: set zero_optimization.sub_group_size to at least ",
           p, " (it is ", setup.sub_group_size, ")");
  folder_ = make_rank_folder(setup.nvme_path, setup.rank);
  try {
    int64_t largest = 0;
    for (const zero::Range& g : groups_) largest = std::max(largest, g.size());
    stride_ = std::max<int64_t>(1, (largest * 4 + int64_t(io::kDirectAlignment) - 1) / int64_t(io::kDirectAlignment)) *
              int64_t(io::kDirectAlignment);
    io_ = std::make_unique<io::AsyncIO>(setup.aio);
    std::vector<std::string> files{"master"};
    files.insert(files.end(), names_.begin(), names_.end());
    for (const auto& name : files)
      files_.push_back(std::make_unique<io::AsyncFile>(*io_, (fs::path(folder_) / (name + ".swp")).string(),
                                                       io::AsyncFile::Mode::create));
    for (int64_t i = 0; i < setup.buffer_count; ++i)
      buffers_.emplace_back(Storage::allocate(size_t(stride_), Device::cpu(), false, io::kDirectAlignment), 0,
                            Shape{stride_ / 4}, DType::f32);
    occupant_.assign(buffers_.size(), -1);
    buffer_io_.resize(buffers_.size());
    // The starting master weights, group by group through the buffers in turn.
    for (size_t g = 0; g < groups_.size(); ++g) {
      const size_t b = g % buffers_.size();
      buffer_io_[b].wait();
      const zero::Range r = groups_[g];
      buffers_[b].view(0, {r.size()}).copy_from(initial_master.view(size_t(r.begin), {r.size()}));
      buffer_io_[b] = file(0).write(buffers_[b].raw(), size_t(stride_), offset_of(int(g)));
    }
    quiesce();
  } catch (...) {
    buffer_io_.clear();
    files_.clear();
    io_.reset();
    std::error_code ec;
    fs::remove_all(folder_, ec);
    throw;
  }
  const int64_t read_ahead = int64_t(buffers_.size()) - tensors();
  int64_t largest = 0;
  for (const zero::Range& g : groups_) largest = std::max(largest, g.size());
  log_info("optimizer offload to NVMe: ", groups_.size(), " sub-group(s) of up to ", largest, " elements, ", buffers_.size(), " swap buffers of ", stride_, " bytes in ", folder_,
           read_ahead >= tensors() ? " (the next sub-group is read while one steps)"
           : read_ahead > 0         ? " (part of the next sub-group is read while one steps)"
                                    : " (no read-ahead: give buffer_count >= " + std::to_string(2 * tensors()) + ")",
           io_->uses_io_uring() ? "" : ", pread/pwrite");
}

NvmeStore::~NvmeStore() {
  try {
    quiesce();
  } catch (const std::exception& e) {
    log_warn("optimizer offload to NVMe: ", e.what());
  }
  files_.clear();
  io_.reset();
  std::error_code ec;
  fs::remove_all(folder_, ec);
  if (ec) log_warn("optimizer offload to NVMe: could not remove ", folder_, ": ", ec.message());
}

std::vector<std::string> NvmeStore::states() const { return present_ ? names_ : std::vector<std::string>{}; }

int NvmeStore::index_of(const std::string& name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  ZT_CHECK(it != names_.end(), "optimizer offload to NVMe: no state '", name, "' (the optimizer keeps ",
           names_.empty() ? std::string("none") : names_.front() + (names_.size() > 1 ? ", ..." : ""), ")");
  return int(1 + (it - names_.begin()));
}

Tensor NvmeStore::view(int g, int j) const {
  return buffers_[buffer_of(sequence(g, j))].view(0, {groups_[size_t(g)].size()});
}

Tensor NvmeStore::create_state(int g, const std::string& name, zero::Range within) {
  const Tensor v = view(g, index_of(name));
  v.view(size_t(within.begin), {within.size()}).zero_();  // the buffer held another tensor before
  return v;
}

bool NvmeStore::start(int64_t q, bool wait) {
  const size_t b = buffer_of(q);
  if (occupant_[b] >= 0 && occupant_[b] / tensors() >= released_) return false;  // still being stepped
  if (!wait && !buffer_io_[b].done()) return false;
  buffer_io_[b].wait();
  const int g = int(q / tensors()), j = int(q % tensors());
  reads_[size_t(q)] = needs_read(j) ? file(j).read(buffers_[b].raw(), size_t(stride_), offset_of(g)) : io::Request();
  buffer_io_[b] = reads_[size_t(q)];
  occupant_[b] = q;
  return true;
}

void NvmeStore::begin_step() {
  in_step_ = true;
  next_ = 0;
  released_ = 0;
  reads_.assign(groups_.size() * size_t(tensors()), io::Request());
  std::fill(occupant_.begin(), occupant_.end(), -1);
  pump();
}

void NvmeStore::pump() {
  const int64_t total = int64_t(reads_.size());
  while (next_ < total && start(next_, false)) ++next_;
}

void NvmeStore::acquire(int g) {
  for (int64_t last = sequence(g, tensors() - 1); next_ <= last; ++next_)
    ZT_CHECK(start(next_, true), "optimizer offload to NVMe: the buffer of tensor ", next_, " is still in use");
  for (int j = 0; j < tensors(); ++j) reads_[size_t(sequence(g, j))].wait();
}

void NvmeStore::release(int g) {
  for (int j = 0; j < tensors(); ++j) {
    const size_t b = buffer_of(sequence(g, j));
    buffer_io_[b] = file(j).write(buffers_[b].raw(), size_t(stride_), offset_of(g));
  }
  released_ = g + 1;
  pump();
}

void NvmeStore::end_step() {
  in_step_ = false;
  present_ = true;  // every state the optimizer names was made (and written) for every group
  std::fill(occupant_.begin(), occupant_.end(), -1);
}

void NvmeStore::quiesce() {
  for (const io::Request& r : buffer_io_) r.wait();
  for (const io::Request& r : reads_) r.wait();
}

Tensor NvmeStore::read(const std::string& name, int g) {
  ZT_CHECK(!in_step_, "optimizer offload to NVMe: a read during a step");
  const int j = name == "master" ? 0 : index_of(name);
  ZT_CHECK(needs_read(j), "optimizer offload to NVMe: the state '", name, "' does not exist yet (no step was taken)");
  quiesce();
  file(j).read_all(buffers_[0].raw(), size_t(stride_), offset_of(g));
  return buffers_[0].view(0, {groups_[size_t(g)].size()});
}

Tensor NvmeStore::load_target(const std::string& name, int g) {
  ZT_CHECK(!in_step_, "optimizer offload to NVMe: a load during a step");
  quiesce();
  return buffers_[0].view(0, {groups_[size_t(g)].size()});
}

void NvmeStore::commit_load(const std::string& name, int g) {
  const int j = name == "master" ? 0 : index_of(name);
  file(j).write_all(buffers_[0].raw(), size_t(stride_), offset_of(g));
}

void NvmeStore::set_states(const std::vector<std::string>& names) {
  ZT_CHECK(names.empty() || names == names_, "optimizer offload to NVMe: the checkpoint's states do not match the "
           "optimizer's (", names.size(), " named, the optimizer keeps ", names_.size(), ")");
  present_ = !names.empty();
}

size_t NvmeStore::disk_bytes() const {
  return groups_.size() * size_t(stride_) * (1 + (present_ ? names_.size() : 0));
}

}  // namespace zt::engine
