// Where stage 3 keeps this rank's partition of the flat parameters when it is not on the compute
// device (offload_param): host memory (pinned on GPU ranks with pin_memory), or a file per rank
// under an NVMe path. The parameter coordinator reads pieces of it per module, and the engine
// writes the whole partition after each optimizer step (and after a checkpoint load).
//
// Elements are the partition's own: element 0 is the first element of this rank's partition of
// the flat layout. Values are held in the storage dtype (f32, bf16, f16).
#pragma once

#include <memory>
#include <string>

#include "zt/core/tensor.hpp"
#include "zt/zero/options.hpp"

namespace zt::zero {

// A read from the store into host memory that may still be in flight (NVMe).
struct StoreRead {
  int64_t id = -1;  // -1: complete
};

class ParamStore {
 public:
  ParamStore(ParamPlace place, int64_t size, DType dtype) : place_(place), size_(size), dtype_(dtype) {}
  virtual ~ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  ParamPlace place() const { return place_; }
  int64_t size() const { return size_; }  // elements of the partition
  DType dtype() const { return dtype_; }

  // The whole partition as one host tensor (size), when it is all in memory; undefined when it
  // is (partly) in a file, and then pieces come through read().
  virtual Tensor memory() const = 0;
  // Starts copying elements [begin, begin + dst.numel()) into dst (host memory); dst must stay
  // untouched until wait() returned.
  virtual StoreRead read(int64_t begin, const Tensor& dst) = 0;
  virtual void wait(StoreRead& read) = 0;
  // Stores `values` (the partition, f32, on the host or the compute device) rounded into the
  // storage dtype. Nothing may be reading the store meanwhile.
  virtual void write(const Tensor& values) = 0;

  virtual size_t memory_bytes() const = 0;  // host memory held for the partition
  virtual size_t file_bytes() const { return 0; }
  virtual size_t buffer_bytes() const { return 0; }  // buffers the store keeps for writing
  // For Engine::placement(): "host (pinned)", "cpu (host)", "nvme (PATH)".
  virtual std::string describe() const = 0;

 private:
  ParamPlace place_;
  int64_t size_;
  DType dtype_;
};

// The store that options.offload_param asks for (host or nvme), for a partition of `size`
// elements in options.storage_dtype on the ranks whose compute device is options.device.
std::shared_ptr<ParamStore> make_param_store(const ZeroOptions& options, int64_t size, int rank);

}  // namespace zt::zero
