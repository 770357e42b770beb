// The engine's settings, read from a DeepSpeed JSON config (a file or a string) with
// DeepSpeed's key names and defaults. An unknown key is an error naming it and the nearest
// valid key; a DeepSpeed key that is known but not supported is an error that says so;
// nothing is silently ignored.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace zt::engine {

struct OptimizerConfig {
  std::string type = "AdamW";       // Adam, AdamW, Lion, LAMB, SGD (read ignoring case, kept in this spelling)
  nlohmann::json params = nlohmann::json::object();  // as given; each optimizer reads its keys
};

struct SchedulerConfig {
  std::string type;                 // "" = none; WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest (this spelling)
  nlohmann::json params = nlohmann::json::object();
};

struct Fp16Config {
  bool enabled = false;
  double loss_scale = 0;            // 0: dynamic
  int initial_scale_power = 16;
  int loss_scale_window = 1000;
  int hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1;
};

struct OffloadConfig {
  std::string device = "none";      // none | cpu | nvme
  bool pin_memory = false;
  std::string nvme_path;            // nvme: a folder on the drive; each rank swaps in a folder of its own there
  int64_t buffer_count = 5;         // DeepSpeed: 5 for offload_param, 4 for offload_optimizer
  bool pipeline_read = false, pipeline_write = false, fast_init = false;  // offload_optimizer to nvme
  int64_t buffer_size = 100000000;  // offload_param only
  double ratio = 1.0;               // offload_optimizer only (< 1: stage 3 only)
  int64_t max_in_cpu = 1000000000;  // offload_param only

  static OffloadConfig optimizer_defaults() {
    OffloadConfig c;
    c.buffer_count = 4;
    return c;
  }
};

// DeepSpeed's "aio" section: how NVMe swap files are read and written (zt/io/async_file.hpp).
struct AioConfig {
  int64_t block_size = 1048576;     // bytes per request
  int64_t queue_depth = 8;          // requests in flight per thread
  int64_t thread_count = 1;
  bool single_submit = false;
  bool overlap_events = true;
  bool use_gds = false;             // GPUDirect Storage: not supported (false only)
};

struct ZeroConfig {
  int stage = 0;
  bool contiguous_gradients = true;
  bool overlap_comm = false;        // DeepSpeed: false for stages 1-2, true for 3
  bool reduce_scatter = true;
  int64_t reduce_bucket_size = 500000000;    // elements
  int64_t allgather_bucket_size = 500000000; // elements
  int64_t stage3_prefetch_bucket_size = 50000000;
  int64_t stage3_param_persistence_threshold = 100000;
  int64_t stage3_max_live_parameters = 1000000000;
  int64_t stage3_max_reuse_distance = 1000000000;
  int64_t sub_group_size = 1000000000;
  OffloadConfig offload_optimizer = OffloadConfig::optimizer_defaults(), offload_param;
};

// DeepSpeed's activation_checkpointing section. DeepSpeed configures its checkpoint() function
// with it and leaves the model to call it; in zt the section's presence checkpoints a CausalLM's
// decoder blocks (and configures the nn::Checkpoint modules of any other model).
struct ActivationCheckpointingConfig {
  bool enabled = false;                       // the section is present
  // Accepted: DeepSpeed splits each checkpoint across the model-parallel ranks, and zt trains
  // with data parallelism only (model-parallel size 1), where there is nothing to split.
  bool partition_activations = false;
  bool cpu_checkpointing = false;             // checkpointed inputs in (pinned) host memory
  std::optional<int64_t> number_checkpoints;  // checkpoint the first N decoder blocks; all when absent
};

struct CommsLoggerSettings {
  bool enabled = false, verbose = false, prof_all = true;
  std::vector<std::string> prof_ops;
};

struct Config {
  // The batch triple after DeepSpeed's rule (any two give the third) for a world size.
  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
  std::optional<OptimizerConfig> optimizer;
  SchedulerConfig scheduler;
  Fp16Config fp16;
  bool bf16 = false;
  double gradient_clipping = 0;     // 0: off
  ZeroConfig zero;
  int64_t steps_per_print = 10;
  bool wall_clock_breakdown = false;
  std::string communication_data_type;  // "" = the gradients' dtype; fp32 | fp16 | bf16
  double gradient_predivide_factor = 1.0;
  bool prescale_gradients = false;
  CommsLoggerSettings comms_logger;
  ActivationCheckpointingConfig activation_checkpointing;
  AioConfig aio;
  nlohmann::json raw;               // the document as given

  // Parses and validates; `source` names the file (or "config string") in errors; world_size
  // resolves the batch triple.
  static Config from_json(const nlohmann::json& j, int world_size, const std::string& source = "config");
  static Config from_file(const std::string& path, int world_size);
  static Config from_string(const std::string& text, int world_size);
};

}  // namespace zt::engine
