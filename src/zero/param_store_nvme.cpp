// offload_param {device: nvme}: this rank's partition in a file of its own under nvme_path,
// read and written through io::AsyncFile (io_uring, DeepSpeed's aio settings). The first
// max_in_cpu elements of the partition stay in host memory (DeepSpeed keeps that many parameter
// elements in CPU memory); the file holds the rest, element e of the partition at byte
// (e - host elements) * dtype size. The file is created at start and removed with the store.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "param_store_parts.hpp"
#include "zt/io/async_file.hpp"

namespace zt::zero {

namespace {

namespace fs = std::filesystem;

// One file per store: the rank, then the process and a count, so that engines of one process
// (or of two jobs given the same folder) never share a file.
std::string partition_file_name(int rank) {
  static std::atomic<int> stores{0};
  char name[80];
  std::snprintf(name, sizeof name, "zt_params_rank%05d.%d.%d.swp", rank, int(::getpid()), stores++);
  return name;
}

class NvmeParamStore : public ParamStore {
 public:
  NvmeParamStore(const ZeroOptions& options, int64_t size, int rank)
      : ParamStore(ParamPlace::nvme, size, options.storage_dtype),
        element_bytes_(dtype_size(options.storage_dtype)),
        host_count_(std::min(options.offload_param.max_in_cpu, size)),
        chunk_(write_chunk_elements(options, size)) {
    const std::string& folder = options.offload_param.nvme_path;
    const std::string key = str("zero_optimization.offload_param.nvme_path = \"", folder, "\"");
    ZT_CHECK(!folder.empty(), key, ": device \"nvme\" needs the folder for the parameter files");
    std::error_code ec;
    fs::create_directories(folder, ec);
    ZT_CHECK(!ec && fs::is_directory(folder), key, ": cannot use it as a folder for the parameter files: ",
             ec ? ec.message() : "it is not a folder");
    path_ = (fs::path(folder) / partition_file_name(rank)).string();
    io_ = std::make_unique<io::AsyncIO>(options.offload_param.aio);
    try {
      file_ = std::make_unique<io::AsyncFile>(*io_, path_, io::AsyncFile::Mode::create);
    } catch (const std::exception& e) {
      ZT_THROW(key, ": cannot create this rank's parameter file: ", e.what());
    }
    host_ = host_tensor(host_count_, options.storage_dtype, pinned_for(options));
  }

  ~NvmeParamStore() override {
    requests_.clear();
    file_.reset();  // waits for requests in flight
    std::error_code ec;
    fs::remove(path_, ec);
  }

  Tensor memory() const override { return Tensor(); }

  StoreRead read(int64_t begin, const Tensor& dst) override {
    const int64_t n = dst.numel();
    ZT_CHECK(begin >= 0 && begin + n <= size() && dst.dtype() == dtype() && dst.device().is_cpu(),
             "NVMe parameter store: cannot read elements [", begin, ", ", begin + n, ") of ", size(), " into ",
             dst.describe());
    char* out = static_cast<char*>(dst.raw());
    const int64_t in_memory = std::clamp<int64_t>(host_count_ - begin, 0, n);
    if (in_memory > 0) std::memcpy(out, host_.view(size_t(begin), {in_memory}).raw(), bytes(in_memory));
    if (in_memory == n) return {};
    const int64_t from_file = begin + in_memory - host_count_;
    const int64_t id = next_id_++;
    requests_[id] = file_->read(out + bytes(in_memory), bytes(n - in_memory), uint64_t(bytes(from_file)));
    return {id};
  }

  void wait(StoreRead& read) override {
    if (read.id < 0) return;
    auto it = requests_.find(read.id);
    ZT_CHECK(it != requests_.end(), "NVMe parameter store: read ", read.id, " is unknown");
    const io::Request request = it->second;
    requests_.erase(it);
    read.id = -1;
    request.wait();  // throws the read's error, naming the file and offset
  }

  void write(const Tensor& values) override {
    ZT_CHECK(values.numel() == size(), "NVMe parameter store: ", values.describe(), " written into a partition of ",
             size(), " elements");
    ZT_CHECK(requests_.empty(), "NVMe parameter store written while ", requests_.size(), " reads are in flight");
    if (host_count_ > 0) round_into_host(host_, values.view(0, {host_count_}), chunk_);
    // The file part a chunk at a time through two buffers: one is rounded into while the
    // other is written.
    const int64_t in_file = size() - host_count_;
    if (in_file == 0) return;
    const int64_t chunk = std::min(chunk_, in_file);
    for (auto& buffer : writing_)
      if (!buffer.data.defined()) buffer.data = host_tensor(chunk, dtype(), false);
    size_t turn = 0;
    for (int64_t at = 0; at < in_file; at += chunk, turn ^= 1) {
      const int64_t m = std::min(chunk, in_file - at);
      Staged& buffer = writing_[turn];
      buffer.request.wait();
      const Tensor piece = buffer.data.view(0, {m});
      round_into_host(piece, values.view(size_t(host_count_ + at), {m}), chunk_);
      buffer.request = file_->write(piece.raw(), bytes(m), uint64_t(bytes(at)));
    }
    for (auto& buffer : writing_) {
      buffer.request.wait();
      buffer.request = io::Request();
    }
  }

  size_t memory_bytes() const override { return host_.nbytes(); }
  size_t file_bytes() const override { return bytes(size() - host_count_); }
  size_t buffer_bytes() const override {
    size_t n = 0;
    for (const auto& buffer : writing_) n += buffer.data.defined() ? buffer.data.nbytes() : 0;
    return n;
  }
  std::string describe() const override {
    return host_count_ > 0 ? str("nvme (", path_, ") and host (the first ", host_count_, " elements)")
                           : str("nvme (", path_, ")");
  }

 private:
  struct Staged {
    Tensor data;  // (chunk) storage dtype
    io::Request request;
  };
  size_t bytes(int64_t elements) const { return size_t(elements) * element_bytes_; }

  size_t element_bytes_;
  int64_t host_count_;  // elements [0, host_count_) of the partition live in host_
  int64_t chunk_;
  std::string path_;
  Tensor host_;         // (host_count_) storage dtype
  std::unique_ptr<io::AsyncIO> io_;
  std::unique_ptr<io::AsyncFile> file_;
  std::map<int64_t, io::Request> requests_;  // reads in flight
  int64_t next_id_ = 0;
  Staged writing_[2];
};

}  // namespace

std::shared_ptr<ParamStore> make_nvme_param_store(const ZeroOptions& options, int64_t size, int rank) {
  return std::make_shared<NvmeParamStore>(options, size, rank);
}

}  // namespace zt::zero
