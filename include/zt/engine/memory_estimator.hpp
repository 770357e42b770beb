// DeepSpeed's estimates of the memory that model states (parameters, gradients and Adam's states,
// in mixed precision) need per GPU and per CPU under ZeRO-2 and ZeRO-3, for each offload option:
// estimate_zero2_model_states_mem_needs (deepspeed/runtime/zero/stage_1_and_2.py) and
// estimate_zero3_model_states_mem_needs (stage3.py), with the same formulas and table layout.
// Activations, buffers and fragmentation come on top; additional_buffer_factor pads the CPU side.
// Beside DeepSpeed's rows: what NVMe offload of the optimizer moves off the host, and zt's own
// engine per rank (which keeps bf16 gradient copies on the host where DeepSpeed keeps fp32 ones).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zt/models/config.hpp"

namespace zt::engine {

struct MemoryEstimateOptions {
  int64_t num_gpus_per_node = 1, num_nodes = 1;
  double additional_buffer_factor = 1.5;
};

struct MemoryNeeds {
  int64_t cpu_bytes = 0, gpu_bytes = 0;
  int64_t nvme_bytes = 0;  // the NVMe rows only
};

// ZeRO-2, Ψ = total_params, N = GPUs, f = additional_buffer_factor:
//   offload_optimizer=cpu:  GPU 2Ψ;                CPU Ψ * max(4N, 16) * f
//   none:                   GPU 2Ψ + int(18Ψ / N);  CPU Ψ * 4 * gpus_per_node * f
MemoryNeeds estimate_zero2_model_states_mem_needs(int64_t total_params, bool cpu_offload,
                                                  const MemoryEstimateOptions& options);
// ZeRO-3, L = largest_layer_params, g = 1 / num_nodes; the GPU always holds 4L for the layer being
// gathered:
//   offload param + optimizer:  GPU 4L;                     CPU Ψ * 18g * f (zero_init), Ψ * max(4 gpus_per_node, 18g) * f
//   offload optimizer:          GPU 4L + int(2Ψ / N);       CPU Ψ * 16g * f (zero_init), Ψ * max(4 gpus_per_node, 16g) * f
//   none:                       GPU 4L + int(18Ψ / N);      CPU L * 4 gpus_per_node * f (zero_init), Ψ * 4 gpus_per_node * f
MemoryNeeds estimate_zero3_model_states_mem_needs(int64_t total_params, int64_t largest_layer_params, bool cpu_offload,
                                                  bool cpu_offload_params, bool zero_init,
                                                  const MemoryEstimateOptions& options);

// What NVMe offload of the optimizer (ZeRO-Infinity) moves off the host, in DeepSpeed's accounting:
// its offload rows above with the 12 bytes a parameter of fp32 master weights and Adam moments
// taken from the CPU and put on NVMe (per node, like the CPU figures: 12 Ψ / num_nodes).
//   ZeRO-2, offload_optimizer=nvme:  GPU 2Ψ;  CPU Ψ * max(4N, 4) * f;  NVMe 12Ψ / nodes
//   ZeRO-3, offload_optimizer=nvme:  GPU as offload_optimizer=cpu;  CPU with k = 6 (offload_param
//                                    cpu: 18 - 12) or 4 (none: 16 - 12) in place of 18 or 16;  NVMe 12Ψg
MemoryNeeds estimate_zero2_nvme_mem_needs(int64_t total_params, const MemoryEstimateOptions& options);
MemoryNeeds estimate_zero3_nvme_mem_needs(int64_t total_params, int64_t largest_layer_params, bool cpu_offload_params,
                                          bool zero_init, const MemoryEstimateOptions& options);

struct MemoryEstimateRow {
  bool offload_param = false, offload_optimizer = false;
  bool zero_init = false;       // stage 3: parameters created partitioned (deepspeed.zero.Init)
  bool optimizer_nvme = false;  // offload_optimizer=nvme (then offload_optimizer is true too)
  MemoryNeeds needs;
};

struct MemoryEstimate {
  int stage = 2;  // 2 or 3
  int64_t total_params = 0, largest_layer_params = 0;
  MemoryEstimateOptions options;
  std::vector<MemoryEstimateRow> rows;       // in DeepSpeed's order
  std::vector<MemoryEstimateRow> nvme_rows;  // offload_optimizer=nvme, in the same order
};

// Every offload option of a stage, as DeepSpeed's *_all_cold functions list them.
MemoryEstimate estimate_zero2(int64_t total_params, const MemoryEstimateOptions& options);
MemoryEstimate estimate_zero3(int64_t total_params, int64_t largest_layer_params, const MemoryEstimateOptions& options);

// zt's own engine, per rank: bf16 (or fp16) parameters and gradients, f32 master weights and Adam's
// two moments (K = 12), Ψ parameters over N ranks, as docs/ARCHITECTURE.md lays them out:
//   GPU   parameters 2Ψ (stage 3: 2Ψ/N) + gradients 2Ψ (stages 2-3: 2Ψ/N) + master and moments
//         12Ψ/N (stage 0: 12Ψ) unless offloaded
//   host  offload cpu: 12Ψ/N + the gradient copy 2Ψ/N + buffer_count tiles of tile_bytes;
//         offload nvme: the gradient copy + the tiles + buffer_count swap buffers of 4 min(S, Ψ/N)
//   NVMe  offload nvme: 12Ψ/N
// Activations, buckets and the CUDA context come on top.
struct ZtEstimateOptions {
  int stage = 3;
  std::string offload_optimizer = "none";  // none, cpu, nvme
  int64_t world_size = 1;
  int64_t buffer_count = 4;
  int64_t tile_bytes = 64 << 20;
  int64_t sub_group_size = 1000000000;
};
MemoryNeeds estimate_zt_model_states(int64_t total_params, const ZtEstimateOptions& options);

// DeepSpeed's printed table:
//   Estimated memory needed for params, optim states and gradients for a:
//   HW: Setup with 1 node, 8 GPUs per node.
//   SW: Model with 1300M total params, 65M largest layer params.
//     per CPU  |  per GPU |   Options
//      ...GB |   ...GB | offload_param=cpu , offload_optimizer=cpu , zero_init=1
// then the NVMe rows with a per-NVMe column:
//   What offload_optimizer=nvme moves off the host (fp32 master weights and optimizer states):
//     per CPU  |  per GPU | per NVMe |   Options
std::string format_memory_estimate(const MemoryEstimate& estimate);
// zt's engine per rank at stages 1-3 with each offload_optimizer setting.
std::string format_zt_estimate(int64_t total_params, int64_t world_size, int64_t buffer_count, int64_t sub_group_size);
nlohmann::json memory_estimate_json(const MemoryEstimate& estimate);

// The parameters of the largest single module (its own parameters, not its children's) of the
// Hugging Face model a config describes: what DeepSpeed's model_to_params reports for stage 3.
int64_t largest_layer_parameters(const models::TransformerConfig& config);

}  // namespace zt::engine
