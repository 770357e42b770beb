// Config::from_json: DeepSpeed's keys and defaults (deepspeed/runtime/config.py, constants.py,
// zero/config.py, zero/offload_config.py, comm/config.py, activation_checkpointing/config.py), read strictly: every key is known,
// supported, of the right type and in range, or the config is rejected with a message that names it.
#include "zt/engine/config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "engine/config_batch.hpp"
#include "zt/core/error.hpp"
#include "zt/core/json_reader.hpp"
#include "zt/optim/factory.hpp"
#include "zt/optim/lr_scheduler.hpp"

namespace zt::engine {

namespace {

constexpr int64_t kMaxInt64 = 9223372036854775807;

// DeepSpeed sections and settings that this version does not implement. Each is accepted only when
// it asks for nothing (DeepSpeed's default, or "enabled": false).
void read_unsupported_top_level(JsonReader& r) {
  for (const char* section :
       {"flops_profiler", "tensorboard", "wandb", "csv_monitor", "comet", "amp",
        "sparse_attention", "pipeline", "elasticity", "compression_training", "data_efficiency", "curriculum_learning",
        "autotuning", "nebula", "checkpoint", "data_types", "progressive_layer_drop", "eigenvalue", "quantize_training",
        "hybrid_engine", "weight_quantization", "compile", "tensor_parallel", "torch_autocast"})
    r.unsupported_section(section);
  r.unsupported("zero_allow_untested_optimizer", false,
                "zt's ZeRO stages step every optimizer it has (Adam, AdamW, Lion, LAMB, SGD), so no override is needed");
  r.unsupported("zero_force_ds_cpu_optimizer", true);
  for (const char* flag : {"sparse_gradients", "fp32_allreduce", "disable_allgather", "dump_state", "memory_breakdown",
                           "dataloader_drop_last"})
    r.unsupported(flag, false);
  r.unsupported("sequence_parallel_size", 1);
  // DeepSpeed only warns when the vocabulary is not a multiple of 8; nothing reads it.
  r.get_optional_int("vocabulary_size", Bounds::at_least(1));
}

std::optional<OptimizerConfig> read_optimizer(JsonReader& top, double& lr) {
  if (!top.has("optimizer")) return std::nullopt;
  JsonReader r = top.child("optimizer");
  std::string supported;
  for (const std::string& t : optim::optimizer_types()) supported += (supported.empty() ? "" : ", ") + t;
  if (!r.has("type")) r.fail("type", "required: the optimizer's name (" + supported + ")");
  OptimizerConfig c;
  c.type = optim::canonical_optimizer_type(r.get_string("type", ""), r.source());
  if (const nlohmann::json* p = r.find("params")) {
    if (!p->is_object()) r.fail("params", "expected an object {\"lr\": ..., ...}");
    c.params = *p;
  }
  r.unsupported("legacy_fusion", false);
  r.finish();
  lr = optim::make_optimizer(c, r.source()).lr;  // reads (and so checks) every parameter
  return c;
}

SchedulerConfig read_scheduler(JsonReader& top, double base_lr) {
  SchedulerConfig c;
  if (!top.has("scheduler")) return c;
  JsonReader r = top.child("scheduler");
  if (!r.has("type")) r.fail("type", "required: the schedule's name (WarmupLR, WarmupDecayLR, WarmupCosineLR, ...)");
  const std::string type = r.get_string("type", "");
  if (const nlohmann::json* p = r.find("params")) {
    if (!p->is_object()) r.fail("params", "expected an object {\"warmup_num_steps\": ..., ...}");
    c.params = *p;
  }
  r.finish();
  c.type = optim::make_scheduler(type, c.params, base_lr, r.source())->name();
  return c;
}

Fp16Config read_fp16(JsonReader r) {
  Fp16Config c;
  c.enabled = r.get_bool("enabled", false);
  c.loss_scale = r.get_number("loss_scale", 0.0, Bounds::at_least(0));
  c.initial_scale_power = int(r.get_int("initial_scale_power", 16, Bounds::between(0, 1000)));
  c.loss_scale_window = int(r.get_int("loss_scale_window", 1000, Bounds::between(1, 1e9)));
  c.hysteresis = int(r.get_int("hysteresis", 2, Bounds::between(1, 1e9)));
  c.consecutive_hysteresis = r.get_bool("consecutive_hysteresis", false);
  c.min_loss_scale = r.get_number("min_loss_scale", 1.0, Bounds::above(0));
  r.unsupported("auto_cast", false);
  r.unsupported("fp16_master_weights_and_grads", false);
  r.finish();
  return c;
}

bool read_bf16(JsonReader& top) {
  const bool current = top.has("bf16"), old = top.has("bfloat16");
  if (current && old) top.fail("bfloat16", "give bf16 or its older name bfloat16, not both");
  JsonReader r = top.child(old ? "bfloat16" : "bf16");
  const bool enabled = r.get_bool("enabled", false);
  r.finish();
  return enabled;
}

OffloadConfig read_offload(JsonReader r, bool optimizer) {
  OffloadConfig c = optimizer ? OffloadConfig::optimizer_defaults() : OffloadConfig{};
  c.device = r.get_choice("device", "none", {"none", "cpu", "nvme"});
  c.pin_memory = r.get_bool("pin_memory", false);
  c.nvme_path = r.get_string("nvme_path", "");
  if (c.device == "nvme" && c.nvme_path.empty())
    r.fail("nvme_path", "required with \"device\": \"nvme\": a folder on the NVMe drive where each rank keeps its files");
  c.buffer_count = r.get_int("buffer_count", c.buffer_count, Bounds::at_least(0));
  if (optimizer) {
    c.ratio = r.get_number("ratio", 1.0, Bounds::between(0, 1));
    if (c.device == "nvme" && c.buffer_count < 1)
      r.fail("buffer_count", "NVMe offload swaps through buffer_count buffers; give at least 1 + the optimizer's "
                             "states (3 for Adam)");
    // zt's swapper always reads the next sub-groups ahead and writes behind as far as buffer_count allows.
    c.pipeline_read = r.get_bool("pipeline_read", false);
    c.pipeline_write = r.get_bool("pipeline_write", false);
    c.fast_init = r.get_bool("fast_init", false);
  } else {
    c.buffer_size = r.get_int("buffer_size", c.buffer_size, Bounds::at_least(0));
    c.max_in_cpu = r.get_int("max_in_cpu", c.max_in_cpu, Bounds::at_least(0));
  }
  r.finish();
  return c;
}

// A setting DeepSpeed accepts under two names (the stage3_ one and the field name).
int64_t read_aliased(JsonReader& r, const std::string& name, const std::string& alias, int64_t fallback) {
  const bool a = r.has(name), b = r.has(alias);
  if (a && b) r.fail(alias, "the same setting as " + r.key_path(name) + "; give one of the two");
  return r.get_int(b ? alias : name, fallback, Bounds::at_least(0));
}

ZeroConfig read_zero(JsonReader& top) {
  if (const nlohmann::json* z = top.find("zero_optimization"); z && z->is_boolean())
    top.fail("zero_optimization", "the boolean form is DeepSpeed's deprecated one; write {\"stage\": 1} (or 0)");
  JsonReader r = top.child("zero_optimization");
  ZeroConfig c;
  const int64_t stage = r.get_int("stage", 0);
  if (stage < 0 || stage > 3)
    r.fail("stage", "ZeRO stages are 0 (off), 1 (optimizer states), 2 (and gradients) and 3 (and parameters)");
  c.stage = int(stage);
  c.contiguous_gradients = r.get_bool("contiguous_gradients", true);
  c.overlap_comm = r.get_bool("overlap_comm", c.stage == 3);
  c.reduce_scatter = r.get_bool("reduce_scatter", true);
  c.reduce_bucket_size = r.get_int("reduce_bucket_size", 500000000, Bounds::at_least(0));
  c.allgather_bucket_size = r.get_int("allgather_bucket_size", 500000000, Bounds::at_least(0));
  c.sub_group_size = r.get_int("sub_group_size", 1000000000, Bounds::at_least(0));
  c.stage3_prefetch_bucket_size = read_aliased(r, "stage3_prefetch_bucket_size", "prefetch_bucket_size", 50000000);
  c.stage3_param_persistence_threshold =
      read_aliased(r, "stage3_param_persistence_threshold", "param_persistence_threshold", 100000);
  c.stage3_max_live_parameters = read_aliased(r, "stage3_max_live_parameters", "max_live_parameters", 1000000000);
  c.stage3_max_reuse_distance = read_aliased(r, "stage3_max_reuse_distance", "max_reuse_distance", 1000000000);
  const bool has_optimizer_offload = r.has("offload_optimizer"), has_param_offload = r.has("offload_param");
  c.offload_optimizer = read_offload(r.child("offload_optimizer"), true);
  c.offload_param = read_offload(r.child("offload_param"), false);
  if (has_optimizer_offload && c.offload_optimizer.device != "none" && c.stage == 0)
    r.fail("offload_optimizer", "optimizer offload needs ZeRO stage 1, 2 or 3 (zero_optimization.stage is 0)");
  if (has_optimizer_offload && c.offload_optimizer.ratio < 1.0 && c.stage != 3)
    r.fail("offload_optimizer", str("a partial offload (ratio ", c.offload_optimizer.ratio,
                                    " < 1) needs ZeRO stage 3 (zero_optimization.stage is ", c.stage, ")"));
  if (has_param_offload && c.offload_param.device != "none" && c.stage != 3)
    r.fail("offload_param", str("parameter offload needs ZeRO stage 3 (zero_optimization.stage is ", c.stage, ")"));

  // DeepSpeed ZeRO settings this version does not implement, with DeepSpeed's defaults.
  const std::pair<const char*, nlohmann::json> inert[] = {
      {"allgather_partitions", true},
      {"use_multi_rank_bucket_allreduce", true},
      {"load_from_fp32_weights", true},
      {"elastic_checkpoint", false},
      {"ignore_unused_parameters", true},
      {"legacy_stage1", false},
      {"round_robin_gradients", false},
      {"zero_hpz_partition_size", 1},
      {"zero_quantized_weights", false},
      {"zero_quantized_nontrainable_weights", false},
      {"zero_quantized_gradients", false},
      {"mics_shard_size", -1},
      {"mics_hierarchical_params_gather", false},
      {"memory_efficient_linear", true},
      {"pipeline_loading_checkpoint", false},
      {"override_module_apply", true},
      {"stage3_gather_16bit_weights_on_model_save", false},
      {"gather_16bit_weights_on_model_save", false},
      {"stage3_gather_fp16_weights_on_model_save", false},
      {"stage3_model_persistence_threshold", kMaxInt64},
      {"model_persistence_threshold", kMaxInt64},
  };
  for (const auto& [key, value] : inert) r.unsupported(key, value);
  const char* deprecated = "deprecated in DeepSpeed; use offload_optimizer / offload_param {\"device\": \"cpu\"}";
  for (const char* key : {"cpu_offload", "cpu_offload_param", "cpu_offload_use_pin_memory"})
    r.unsupported(key, false, deprecated);
  r.finish();
  return c;
}

AioConfig read_aio(JsonReader r) {
  AioConfig c;
  c.block_size = r.get_int("block_size", c.block_size, Bounds::at_least(1));
  c.queue_depth = r.get_int("queue_depth", c.queue_depth, Bounds::between(1, 4096));
  c.thread_count = r.get_int("thread_count", c.thread_count, Bounds::between(1, 256));
  c.single_submit = r.get_bool("single_submit", c.single_submit);
  c.overlap_events = r.get_bool("overlap_events", c.overlap_events);
  c.use_gds = r.get_bool("use_gds", false);
  if (c.use_gds)
    r.fail("use_gds", "GPUDirect Storage is not supported by this version of zt: NVMe swaps go through host memory "
                      "(set it to false)");
  r.finish();
  return c;
}

CommsLoggerSettings read_comms_logger(JsonReader r) {
  CommsLoggerSettings c;
  c.enabled = r.get_bool("enabled", false);
  c.verbose = r.get_bool("verbose", false);
  c.prof_all = r.get_bool("prof_all", true);
  c.prof_ops = r.get_string_list("prof_ops");
  r.unsupported("debug", false);
  r.finish();
  return c;
}

ActivationCheckpointingConfig read_activation_checkpointing(JsonReader& top) {
  ActivationCheckpointingConfig c;
  c.enabled = top.has("activation_checkpointing");
  JsonReader r = top.child("activation_checkpointing");
  c.partition_activations = r.get_bool("partition_activations", false);
  c.cpu_checkpointing = r.get_bool("cpu_checkpointing", false);
  c.number_checkpoints = r.get_optional_int("number_checkpoints", Bounds::at_least(1));
  r.unsupported("contiguous_memory_optimization", false,
                "it copies partitioned checkpoints into one preallocated buffer; zt keeps each checkpointed input "
                "in its own tensor from the stream-ordered pool");
  r.unsupported("synchronize_checkpoint_boundary", false);
  r.unsupported("profile", false);
  r.finish();
  return c;
}

std::string read_communication_data_type(JsonReader& r) {
  const std::string v = r.get_choice("communication_data_type", "", {"fp32", "fp16", "bf16", "bfp16"});
  return v == "bfp16" ? "bf16" : v;  // DeepSpeed spells bf16 "bfp16" here
}

// Parses JSON (comments allowed), rejecting duplicate keys as DeepSpeed's loader does (nlohmann
// alone would keep the last one).
nlohmann::json parse_document(const std::string& text, const std::string& source) {
  std::vector<std::set<std::string>> seen;  // keys of each open object (arrays get an empty set)
  std::vector<std::string> path;            // the key under which each open container sits
  std::vector<bool> is_array;
  std::string key;
  auto check_duplicates = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      seen.emplace_back();
      path.push_back(!is_array.empty() && is_array.back() ? "" : key);  // array elements have no key
      is_array.push_back(event == E::array_start);
    } else if (event == E::object_end || event == E::array_end) {
      seen.pop_back();
      path.pop_back();
      is_array.pop_back();
    } else if (event == E::key) {
      key = parsed.get<std::string>();
      if (!seen.back().insert(key).second) {
        std::string where;
        for (const std::string& p : path)
          if (!p.empty()) where += p + ".";
        ZT_THROW(source, ": the key '", where, key, "' appears twice (DeepSpeed rejects duplicate keys too)");
      }
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, check_duplicates, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    ZT_THROW(source, ": not valid JSON: ", e.what());
  }
}

}  // namespace

Config Config::from_json(const nlohmann::json& j, int world_size, const std::string& source) {
  JsonReader r(j, "", source);
  Config c;
  c.raw = j;
  const BatchSizes batch = resolve_batch_sizes(
      r.get_optional_int("train_batch_size", Bounds::at_least(1)),
      r.get_optional_int("train_micro_batch_size_per_gpu", Bounds::at_least(1)),
      r.get_optional_int("gradient_accumulation_steps", Bounds::at_least(1)), world_size, source);
  c.train_batch_size = batch.train_batch_size;
  c.train_micro_batch_size_per_gpu = batch.micro_batch_per_gpu;
  c.gradient_accumulation_steps = batch.gradient_accumulation_steps;

  double lr = 1e-3;
  c.optimizer = read_optimizer(r, lr);
  c.scheduler = read_scheduler(r, lr);
  c.fp16 = read_fp16(r.child("fp16"));
  c.bf16 = read_bf16(r);
  if (c.fp16.enabled && c.bf16)
    r.fail("bf16", "fp16 and bf16 are both enabled; enable one (bf16 needs no loss scaling)");
  c.gradient_clipping = r.get_number("gradient_clipping", 0.0, Bounds::at_least(0));
  c.zero = read_zero(r);
  c.steps_per_print = r.get_int("steps_per_print", 10, Bounds::at_least(1));
  c.wall_clock_breakdown = r.get_bool("wall_clock_breakdown", false);
  c.communication_data_type = read_communication_data_type(r);
  c.gradient_predivide_factor = r.get_number("gradient_predivide_factor", 1.0, Bounds::above(0));
  c.prescale_gradients = r.get_bool("prescale_gradients", false);
  c.comms_logger = read_comms_logger(r.child("comms_logger"));
  c.activation_checkpointing = read_activation_checkpointing(r);
  c.aio = read_aio(r.child("aio"));
  read_unsupported_top_level(r);
  r.finish();
  return c;
}

Config Config::from_string(const std::string& text, int world_size) {
  const std::string source = "config string";
  return from_json(parse_document(text, source), world_size, source);
}

Config Config::from_file(const std::string& path, int world_size) {
  std::ifstream in(path, std::ios::binary);
  ZT_CHECK(in.good(), "cannot read the DeepSpeed config ", path, ": ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(parse_document(text.str(), path), world_size, path);
}

}  // namespace zt::engine
