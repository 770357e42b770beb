// What the ZeRO layer needs to know, resolved from the engine's config.
#pragma once

#include <cstdint>
#include <string>

#include "zt/core/tensor.hpp"
#include "zt/io/async_file.hpp"

namespace zt::zero {

// Where stage 3 keeps this rank's partition of the parameters: on the compute device (plain
// stage 3), in host memory, or in a file under an NVMe path (offload_param).
enum class ParamPlace { device, host, nvme };
const char* param_place_name(ParamPlace place);  // "device", "host", "nvme"

// offload_param, with DeepSpeed's keys and defaults.
struct ParamOffloadOptions {
  ParamPlace place = ParamPlace::device;
  bool pin_memory = false;           // page-locked host memory on GPU ranks
  int64_t buffer_count = 5;          // buffers for parameter fetches (device staging, host reads)
  int64_t buffer_size = 100000000;   // elements per buffer
  int64_t max_in_cpu = 1000000000;   // nvme: elements of the partition kept in host memory
  std::string nvme_path;             // nvme: the folder of the per-rank partition files
  io::AioOptions aio;                // nvme: DeepSpeed's "aio" settings for the file's reads and writes
};

struct ZeroOptions {
  int stage = 0;                      // 0-3
  DType storage_dtype = DType::f32;   // parameters and gradients as stored (f32, bf16, f16)
  DType comm_dtype = DType::f32;      // gradients as reduced
  Device device = Device::cpu();
  int64_t alignment = 16;             // elements
  int64_t reduce_bucket_size = 500000000;
  bool overlap_comm = false;
  int64_t prefetch_bucket_size = 50000000;
  int64_t param_persistence_threshold = 100000;
  int64_t max_live_parameters = 1000000000;
  ParamOffloadOptions offload_param;  // stage 3 only
};

// What one rank holds, measured from its buffers (bytes).
struct MemoryReport {
  size_t parameters = 0;        // the parameter storage this rank keeps in memory (full or its partition)
  ParamPlace parameters_place = ParamPlace::device;  // where `parameters` lives
  size_t parameters_in_file = 0;   // offload_param nvme: the partition's bytes in the file (not memory)
  size_t parameter_buffers = 0;    // offload_param: fetch buffers held (device staging, host reads)
  size_t gradients = 0;         // reduced-gradient storage (full or partition)
  size_t master_weights = 0;    // f32 master copy, when it is not the parameter storage itself
  size_t optimizer_states = 0;  // moments etc.
  size_t persistent_gathered = 0;  // stage 3: small parameters kept whole
  size_t bucket_peak = 0;       // gradient buckets in flight, at most
  size_t gathered_peak = 0;     // stage 3: gathered parameters, at most
  size_t offload_buffers = 0;   // optimizer offload: host gradient copy, staging tiles, swap buffers
  size_t nvme = 0;              // optimizer offload to NVMe: bytes in this rank's swap files
  size_t model_states() const { return parameters + gradients + master_weights + optimizer_states + persistent_gathered; }
};

}  // namespace zt::zero
