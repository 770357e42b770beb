#include "zt/zero/param_store.hpp"

#include <algorithm>
#include <cstring>

#include "param_store_parts.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::zero {

const char* param_place_name(ParamPlace place) {
  switch (place) {
    case ParamPlace::device: return "device";
    case ParamPlace::host: return "host";
    case ParamPlace::nvme: return "nvme";
  }
  return "?";
}

bool pinned_for(const ZeroOptions& options) { return options.offload_param.pin_memory && options.device.is_cuda(); }

Tensor host_tensor(int64_t n, DType dtype, bool pinned) {
  return Tensor(Storage::allocate(size_t(n) * dtype_size(dtype), Device::cpu(), pinned), 0, {n}, dtype);
}

int64_t write_chunk_elements(const ZeroOptions& options, int64_t size) {
  return std::clamp<int64_t>(options.offload_param.buffer_size, 1, std::max<int64_t>(size, 1));
}

void round_into_host(const Tensor& dst, const Tensor& values, int64_t chunk) {
  ZT_CHECK(dst.numel() == values.numel(), "parameter store: ", values.describe(), " written into ", dst.describe());
  if (values.device().is_cpu()) {
    ops::cast(dst, values);
    return;
  }
  // Rounded where the values are, then brought down a chunk at a time: the device holds one
  // chunk of the storage dtype, never the partition.
  const int64_t n = values.numel();
  const Tensor rounded = Tensor::empty({std::min(chunk, n)}, dst.dtype(), values.device());
  for (int64_t at = 0; at < n; at += chunk) {
    const int64_t m = std::min(chunk, n - at);
    const Tensor piece = rounded.view(0, {m});
    ops::cast(piece, values.view(size_t(at), {m}));
    dst.view(size_t(at), {m}).copy_from(piece);
  }
}

namespace {

// The partition in one host buffer.
class HostParamStore : public ParamStore {
 public:
  HostParamStore(const ZeroOptions& options, int64_t size)
      : ParamStore(ParamPlace::host, size, options.storage_dtype), pinned_(pinned_for(options)),
        on_cpu_ranks_(options.device.is_cpu()), chunk_(write_chunk_elements(options, size)),
        partition_(host_tensor(size, options.storage_dtype, pinned_)) {}

  Tensor memory() const override { return partition_; }
  StoreRead read(int64_t begin, const Tensor& dst) override {
    dst.copy_from(partition_.view(size_t(begin), {dst.numel()}));
    return {};
  }
  void wait(StoreRead&) override {}
  void write(const Tensor& values) override { round_into_host(partition_, values, chunk_); }
  size_t memory_bytes() const override { return partition_.nbytes(); }
  std::string describe() const override { return on_cpu_ranks_ ? "cpu (host)" : pinned_ ? "host (pinned)" : "host"; }

 private:
  bool pinned_, on_cpu_ranks_;
  int64_t chunk_;
  Tensor partition_;  // (size) storage dtype
};

}  // namespace

std::shared_ptr<ParamStore> make_param_store(const ZeroOptions& options, int64_t size, int rank) {
  ZT_CHECK(options.stage == 3, "offload_param needs ZeRO stage 3 (the stage is ", options.stage, ")");
  switch (options.offload_param.place) {
    case ParamPlace::host: return std::make_shared<HostParamStore>(options, size);
    case ParamPlace::nvme: return make_nvme_param_store(options, size, rank);
    case ParamPlace::device: break;
  }
  ZT_THROW("make_param_store: offload_param.device is \"none\": the partition stays on the compute device");
}

}  // namespace zt::zero
