// Config::from_json/from_string/from_file: a full DeepSpeed config, DeepSpeed's defaults, the batch
// rule, and the errors (unknown keys with the nearest one, unsupported DeepSpeed keys, wrong
// types, out-of-range values, "auto").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "error_text.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/config.hpp"

namespace zt::engine {
namespace {

using nlohmann::json;

using zt::test::error_of;

// The error for a config, parsed for world size `world`.
std::string config_error(const json& j, int world = 1) {
  return error_of([&] { Config::from_json(j, world, "ds.json"); });
}

#define EXPECT_HAS(haystack, needle)                                                        \
  do {                                                                                      \
    const std::string h_ = (haystack);                                                      \
    EXPECT_NE(h_.find(needle), std::string::npos) << "expected \"" << (needle) << "\" in\n" \
                                                  << h_;                                    \
  } while (0)

json with_micro(json j) {
  j["train_micro_batch_size_per_gpu"] = 1;
  return j;
}

const char* kFullConfig = R"({
  // DeepSpeed's loader takes comments too
  "train_batch_size": 64,
  "train_micro_batch_size_per_gpu": 4,
  "gradient_accumulation_steps": 2,
  "steps_per_print": 100,
  "optimizer": {
    "type": "adamw",
    "params": {"lr": 3e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
  },
  "scheduler": {
    "type": "WarmupDecayLR",
    "params": {"warmup_min_lr": 0, "warmup_max_lr": 3e-4, "warmup_num_steps": 100, "total_num_steps": 1000}
  },
  "gradient_clipping": 1.0,
  "fp16": {"enabled": true, "loss_scale": 0, "initial_scale_power": 12, "loss_scale_window": 500,
           "hysteresis": 3, "consecutive_hysteresis": true, "min_loss_scale": 0.5},
  "zero_optimization": {
    "stage": 3,
    "contiguous_gradients": true,
    "reduce_bucket_size": 5e7,
    "stage3_prefetch_bucket_size": 4.5e7,
    "stage3_param_persistence_threshold": 1e4,
    "stage3_max_live_parameters": 3e8,
    "stage3_max_reuse_distance": 2e8,
    "sub_group_size": 1e8,
    "offload_optimizer": {"device": "cpu", "pin_memory": true, "ratio": 0.5},
    "offload_param": {"device": "cpu", "pin_memory": true, "buffer_count": 6},
    "stage3_gather_16bit_weights_on_model_save": false,
    "round_robin_gradients": false
  },
  "wall_clock_breakdown": true,
  "communication_data_type": "bfp16",
  "gradient_predivide_factor": 2.0,
  "prescale_gradients": true,
  "comms_logger": {"enabled": true, "verbose": true, "prof_all": false, "prof_ops": ["all_reduce", "all_gather"]},
  "tensorboard": {"enabled": false, "output_path": "runs/"},
  "zero_allow_untested_optimizer": false
})";

TEST(Config, AFullDeepSpeedConfig) {
  const Config c = Config::from_string(kFullConfig, 8);
  EXPECT_EQ(c.train_batch_size, 64);
  EXPECT_EQ(c.train_micro_batch_size_per_gpu, 4);
  EXPECT_EQ(c.gradient_accumulation_steps, 2);
  EXPECT_EQ(c.steps_per_print, 100);
  ASSERT_TRUE(c.optimizer.has_value());
  EXPECT_EQ(c.optimizer->type, "AdamW");
  EXPECT_EQ(c.optimizer->params["lr"], 3e-4);
  EXPECT_EQ(c.scheduler.type, "WarmupDecayLR");
  EXPECT_EQ(c.scheduler.params["total_num_steps"], 1000);
  EXPECT_EQ(c.gradient_clipping, 1.0);
  EXPECT_TRUE(c.fp16.enabled);
  EXPECT_EQ(c.fp16.loss_scale, 0);
  EXPECT_EQ(c.fp16.initial_scale_power, 12);
  EXPECT_EQ(c.fp16.loss_scale_window, 500);
  EXPECT_EQ(c.fp16.hysteresis, 3);
  EXPECT_TRUE(c.fp16.consecutive_hysteresis);
  EXPECT_EQ(c.fp16.min_loss_scale, 0.5);
  EXPECT_FALSE(c.bf16);
  EXPECT_EQ(c.zero.stage, 3);
  EXPECT_TRUE(c.zero.overlap_comm);  // DeepSpeed's default for stage 3
  EXPECT_EQ(c.zero.reduce_bucket_size, 50000000);
  EXPECT_EQ(c.zero.allgather_bucket_size, 500000000);
  EXPECT_EQ(c.zero.stage3_prefetch_bucket_size, 45000000);
  EXPECT_EQ(c.zero.stage3_param_persistence_threshold, 10000);
  EXPECT_EQ(c.zero.stage3_max_live_parameters, 300000000);
  EXPECT_EQ(c.zero.stage3_max_reuse_distance, 200000000);
  EXPECT_EQ(c.zero.sub_group_size, 100000000);
  EXPECT_EQ(c.zero.offload_optimizer.device, "cpu");
  EXPECT_TRUE(c.zero.offload_optimizer.pin_memory);
  EXPECT_EQ(c.zero.offload_optimizer.ratio, 0.5);
  EXPECT_EQ(c.zero.offload_optimizer.buffer_count, 4);
  EXPECT_EQ(c.zero.offload_param.device, "cpu");
  EXPECT_EQ(c.zero.offload_param.buffer_count, 6);
  EXPECT_EQ(c.zero.offload_param.buffer_size, 100000000);
  EXPECT_TRUE(c.wall_clock_breakdown);
  EXPECT_EQ(c.communication_data_type, "bf16");
  EXPECT_EQ(c.gradient_predivide_factor, 2.0);
  EXPECT_TRUE(c.prescale_gradients);
  EXPECT_TRUE(c.comms_logger.enabled);
  EXPECT_TRUE(c.comms_logger.verbose);
  EXPECT_FALSE(c.comms_logger.prof_all);
  EXPECT_EQ(c.comms_logger.prof_ops, (std::vector<std::string>{"all_reduce", "all_gather"}));
  EXPECT_EQ(c.raw["steps_per_print"], 100);
}

TEST(Config, DeepSpeedsDefaults) {
  const Config c = Config::from_json({{"train_micro_batch_size_per_gpu", 2}}, 1);
  EXPECT_FALSE(c.optimizer.has_value());
  EXPECT_EQ(c.scheduler.type, "");
  EXPECT_FALSE(c.fp16.enabled);
  EXPECT_EQ(c.fp16.initial_scale_power, 16);
  EXPECT_EQ(c.fp16.loss_scale_window, 1000);
  EXPECT_EQ(c.fp16.hysteresis, 2);
  EXPECT_FALSE(c.fp16.consecutive_hysteresis);
  EXPECT_EQ(c.fp16.min_loss_scale, 1);
  EXPECT_EQ(c.gradient_clipping, 0);
  EXPECT_EQ(c.zero.stage, 0);
  EXPECT_TRUE(c.zero.contiguous_gradients);
  EXPECT_FALSE(c.zero.overlap_comm);
  EXPECT_TRUE(c.zero.reduce_scatter);
  EXPECT_EQ(c.zero.reduce_bucket_size, 500000000);
  EXPECT_EQ(c.zero.stage3_prefetch_bucket_size, 50000000);
  EXPECT_EQ(c.zero.stage3_param_persistence_threshold, 100000);
  EXPECT_EQ(c.zero.stage3_max_live_parameters, 1000000000);
  EXPECT_EQ(c.zero.sub_group_size, 1000000000);
  EXPECT_EQ(c.zero.offload_optimizer.device, "none");
  EXPECT_EQ(c.zero.offload_optimizer.buffer_count, 4);
  EXPECT_EQ(c.zero.offload_param.buffer_count, 5);
  EXPECT_EQ(c.steps_per_print, 10);
  EXPECT_EQ(c.communication_data_type, "");
  EXPECT_EQ(c.gradient_predivide_factor, 1.0);
  EXPECT_TRUE(c.comms_logger.prof_all);
}

// ZeRO-Infinity for the optimizer: offload_optimizer to NVMe with DeepSpeed's swap keys, and the
// top-level aio section (DeepSpeed's defaults when absent).
TEST(Config, NvmeOptimizerOffloadAndAio) {
  const Config defaults = Config::from_json(with_micro(json::object()), 1, "ds.json");
  EXPECT_EQ(defaults.aio.block_size, 1048576);
  EXPECT_EQ(defaults.aio.queue_depth, 8);
  EXPECT_EQ(defaults.aio.thread_count, 1);
  EXPECT_FALSE(defaults.aio.single_submit);
  EXPECT_TRUE(defaults.aio.overlap_events);
  EXPECT_FALSE(defaults.aio.use_gds);
  const Config c = Config::from_json(
      with_micro({{"zero_optimization",
                   {{"stage", 3},
                    {"sub_group_size", 1e8},
                    {"offload_optimizer",
                     {{"device", "nvme"}, {"nvme_path", "/local_nvme"}, {"pin_memory", true}, {"buffer_count", 6},
                      {"pipeline_read", true}, {"pipeline_write", true}, {"fast_init", false}}}}},
                  {"aio",
                   {{"block_size", 262144}, {"queue_depth", 32}, {"thread_count", 2}, {"single_submit", true},
                    {"overlap_events", false}, {"use_gds", false}}}}),
      1, "ds.json");
  EXPECT_EQ(c.zero.offload_optimizer.device, "nvme");
  EXPECT_EQ(c.zero.offload_optimizer.nvme_path, "/local_nvme");
  EXPECT_EQ(c.zero.offload_optimizer.buffer_count, 6);
  EXPECT_TRUE(c.zero.offload_optimizer.pipeline_read && c.zero.offload_optimizer.pipeline_write);
  EXPECT_EQ(c.zero.sub_group_size, 100000000);
  EXPECT_EQ(c.aio.block_size, 262144);
  EXPECT_EQ(c.aio.queue_depth, 32);
  EXPECT_EQ(c.aio.thread_count, 2);
  EXPECT_TRUE(c.aio.single_submit);
  EXPECT_FALSE(c.aio.overlap_events);

  const auto nvme = [](json offload) {
    return with_micro({{"zero_optimization", {{"stage", 3}, {"offload_optimizer", std::move(offload)}}}});
  };
  EXPECT_HAS(config_error(nvme({{"device", "nvme"}})),
             "zero_optimization.offload_optimizer.nvme_path: required with \"device\": \"nvme\"");
  EXPECT_HAS(config_error(nvme({{"device", "nvme"}, {"nvme_path", "/x"}, {"buffer_count", 0}})),
             "zero_optimization.offload_optimizer.buffer_count = 0: NVMe offload swaps through buffer_count buffers");
  EXPECT_HAS(config_error(with_micro({{"aio", {{"use_gds", true}}}})),
             "aio.use_gds = true: GPUDirect Storage is not supported");
  EXPECT_HAS(config_error(with_micro({{"aio", {{"queue_depht", 4}}}})), "unknown key 'aio.queue_depht' (did you mean 'queue_depth'?)");
  EXPECT_HAS(config_error(with_micro({{"aio", {{"block_size", 0}}}})), "aio.block_size = 0: expected an integer >= 1");
  EXPECT_HAS(config_error(with_micro({{"aio", {{"thread_count", 0}}}})), "aio.thread_count = 0");
}

// The example configs (a 7B model on one GPU with the optimizer offloaded) are valid.
TEST(Config, ExampleOffloadConfigsParse) {
  const Config cpu = Config::from_file(std::string(ZT_SOURCE_DIR) + "/examples/ds_offload_cpu_7b.json", 1);
  EXPECT_EQ(cpu.zero.offload_optimizer.device, "cpu");
  const Config nvme = Config::from_file(std::string(ZT_SOURCE_DIR) + "/examples/ds_offload_nvme_7b.json", 1);
  EXPECT_EQ(nvme.zero.offload_optimizer.device, "nvme");
  EXPECT_EQ(nvme.zero.sub_group_size, 100000000);
  EXPECT_EQ(nvme.aio.queue_depth, 16);
}

TEST(Config, OverlapCommFollowsTheStageUnlessGiven) {
  for (int stage : {0, 1, 2, 3}) {
    const Config c = Config::from_json(with_micro({{"zero_optimization", {{"stage", stage}}}}), 1);
    EXPECT_EQ(c.zero.overlap_comm, stage == 3) << "stage " << stage;
  }
  EXPECT_TRUE(Config::from_json(with_micro({{"zero_optimization", {{"stage", 2}, {"overlap_comm", true}}}}), 1)
                  .zero.overlap_comm);
  EXPECT_FALSE(Config::from_json(with_micro({{"zero_optimization", {{"stage", 3}, {"overlap_comm", false}}}}), 1)
                   .zero.overlap_comm);
}

// ---- the batch rule -----------------------------------------------------------------------------

struct Batch {
  int64_t train, micro, gas;
};

Batch batch_of(const json& j, int world) {
  const Config c = Config::from_json(j, world);
  return {c.train_batch_size, c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps};
}

TEST(ConfigBatch, AnyTwoGiveTheThird) {
  auto check = [](const json& j, int world, Batch want) {
    const Batch b = batch_of(j, world);
    EXPECT_EQ(b.train, want.train) << j.dump();
    EXPECT_EQ(b.micro, want.micro) << j.dump();
    EXPECT_EQ(b.gas, want.gas) << j.dump();
  };
  check({{"train_batch_size", 32}, {"train_micro_batch_size_per_gpu", 4}, {"gradient_accumulation_steps", 4}}, 2,
        {32, 4, 4});
  check({{"train_batch_size", 32}, {"train_micro_batch_size_per_gpu", 4}}, 2, {32, 4, 4});
  check({{"train_batch_size", 32}, {"gradient_accumulation_steps", 4}}, 2, {32, 4, 4});
  check({{"train_micro_batch_size_per_gpu", 4}, {"gradient_accumulation_steps", 2}}, 3, {24, 4, 2});
  check({{"train_micro_batch_size_per_gpu", 4}}, 3, {12, 4, 1});
  check({{"train_batch_size", 12}}, 3, {12, 4, 1});
  check({{"train_batch_size", 1e2}, {"train_micro_batch_size_per_gpu", 5.0}}, 4, {100, 5, 5});
}

TEST(ConfigBatch, DisagreementShowsTheArithmetic) {
  const std::string e = config_error(
      {{"train_batch_size", 32}, {"train_micro_batch_size_per_gpu", 4}, {"gradient_accumulation_steps", 2}}, 2);
  EXPECT_HAS(e, "ds.json: train_batch_size, train_micro_batch_size_per_gpu and gradient_accumulation_steps disagree");
  EXPECT_HAS(e, "32 != 4 * 2 * 2 = 16");
  EXPECT_HAS(config_error({{"train_batch_size", 30}, {"train_micro_batch_size_per_gpu", 4}}, 2),
             "train_batch_size 30 is not divisible by train_micro_batch_size_per_gpu * world size = 4 * 2 = 8");
  EXPECT_HAS(config_error({{"train_batch_size", 30}, {"gradient_accumulation_steps", 4}}, 2),
             "train_batch_size 30 is not divisible by gradient_accumulation_steps * world size = 4 * 2 = 8");
  EXPECT_HAS(config_error({{"train_batch_size", 13}}, 3), "train_batch_size 13 is not divisible by the world size 3");
  EXPECT_HAS(config_error(json::object()), "give train_batch_size or train_micro_batch_size_per_gpu");
  EXPECT_HAS(config_error({{"gradient_accumulation_steps", 4}}), "gradient_accumulation_steps alone");
  EXPECT_HAS(config_error({{"train_micro_batch_size_per_gpu", 0}}),
             "train_micro_batch_size_per_gpu = 0: expected an integer >= 1");
  EXPECT_HAS(config_error({{"train_batch_size", 2.5}}), "train_batch_size = 2.5: expected an integer >= 1");
}

// ---- errors -------------------------------------------------------------------------------------

TEST(ConfigErrors, UnknownKeysNameThePathAndTheNearestKey) {
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 3}, {"stage3_prefetch_bucket", 5}}}})),
             "ds.json: unknown key 'zero_optimization.stage3_prefetch_bucket' (did you mean "
             "'stage3_prefetch_bucket_size'?)");
  EXPECT_HAS(config_error({{"train_micro_batch_size_per_gpu", 1}, {"gradient_clip", 1.0}}),
             "unknown key 'gradient_clip' (did you mean 'gradient_clipping'?)");
  EXPECT_HAS(config_error(with_micro({{"fp16", {{"enable", true}}}})),
             "unknown key 'fp16.enable' (did you mean 'enabled'?)");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"offload_optimizer", {{"devices", "cpu"}}}}}})),
             "unknown key 'zero_optimization.offload_optimizer.devices' (did you mean 'device'?)");
  EXPECT_HAS(config_error(with_micro({{"optimizer", {{"type", "Adam"}, {"params", {{"lrate", 1}}}}}})),
             "unknown key 'optimizer.params.lrate'");
  EXPECT_HAS(config_error(with_micro({{"scheduler", {{"type", "WarmupLR"}, {"params", {{"warmup_num_step", 1}}}}}})),
             "unknown key 'scheduler.params.warmup_num_step' (did you mean 'warmup_num_steps'?)");
  // Nothing near (a short key is near too much): the supported keys at that level are listed.
  EXPECT_HAS(config_error({{"train_micro_batch_size_per_gpu", 1}, {"foo", 1}}),
             "unknown key 'foo'; the keys at the top level are: activation_checkpointing, aio, bf16, bfloat16, comms_logger,");
  EXPECT_HAS(config_error(with_micro({{"comms_logger", {{"xyzzy", true}}}})),
             "the keys of comms_logger are: enabled, prof_all, prof_ops, verbose");
  // DeepSpeed's optimizer-offload section has no buffer_size (only offload_param does).
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 2}, {"offload_optimizer", {{"buffer_size", 1}}}}}})),
             "unknown key 'zero_optimization.offload_optimizer.buffer_size'");
}

TEST(ConfigErrors, UnsupportedDeepSpeedKeysSaySo) {
  EXPECT_HAS(config_error(with_micro({{"flops_profiler", {{"enabled", true}}}})),
             "ds.json: flops_profiler = {\"enabled\":true}: a DeepSpeed feature that this "
             "version of zt does not support");
  EXPECT_HAS(config_error(with_micro({{"wandb", {{"enabled", true}, {"project", "x"}}}})),
             "wandb = {\"enabled\":true,\"project\":\"x\"}: a DeepSpeed feature");
  EXPECT_HAS(config_error(with_micro({{"zero_allow_untested_optimizer", true}})),
             "zero_allow_untested_optimizer = true: a DeepSpeed setting that this version of zt does not support");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 2}, {"round_robin_gradients", true}}}})),
             "zero_optimization.round_robin_gradients = true: a DeepSpeed setting that this version of zt does not "
             "support (its default is false");
  EXPECT_HAS(config_error(with_micro(
                 {{"zero_optimization", {{"stage", 3}, {"stage3_gather_16bit_weights_on_model_save", true}}}})),
             "stage3_gather_16bit_weights_on_model_save = true: a DeepSpeed setting");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 3}, {"zero_hpz_partition_size", 8}}}})),
             "zero_hpz_partition_size = 8");
  EXPECT_HAS(config_error(with_micro({{"optimizer", {{"type", "OneBitAdam"}}}})), "does not support");
  EXPECT_HAS(config_error(with_micro({{"fp16", {{"enabled", true}, {"auto_cast", true}}}})), "fp16.auto_cast = true");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 1}, {"cpu_offload", true}}}})),
             "deprecated in DeepSpeed; use offload_optimizer");
  // Sections and settings that ask for nothing are accepted.
  EXPECT_NO_THROW(Config::from_json(
      with_micro({{"tensorboard", {{"enabled", false}, {"output_path", "x"}}},
                  {"activation_checkpointing", {{"partition_activations", false}, {"number_checkpoints", nullptr}}},
                  {"zero_optimization", {{"stage", 2}, {"round_robin_gradients", false}, {"allgather_partitions", true}}},
                  {"zero_allow_untested_optimizer", false},
                  {"sparse_gradients", false}}),
      1));
}

TEST(ConfigErrors, WrongTypesNameKeyValueAndType) {
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", "two"}}}})),
             "ds.json: zero_optimization.stage = \"two\": expected an integer");
  EXPECT_HAS(config_error(with_micro({{"fp16", {{"enabled", "yes"}}}})),
             "fp16.enabled = \"yes\": expected true or false");
  EXPECT_HAS(config_error(with_micro({{"gradient_clipping", json::array({1})}})),
             "gradient_clipping = [1]: expected a number >= 0");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", 2}})),
             "zero_optimization = 2: expected an object");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", true}})), "the boolean form is DeepSpeed's deprecated one");
  EXPECT_HAS(config_error(with_micro({{"comms_logger", {{"prof_ops", "all_reduce"}}}})),
             "comms_logger.prof_ops = \"all_reduce\": expected a list of strings");
  EXPECT_HAS(config_error(with_micro({{"optimizer", {{"params", {{"lr", 1}}}}}})), "optimizer.type: required");
  EXPECT_HAS(config_error(with_micro({{"communication_data_type", "fp8"}})),
             "communication_data_type = \"fp8\": expected one of \"fp32\", \"fp16\", \"bf16\", \"bfp16\"");
}

TEST(ConfigErrors, OutOfRangeValues) {
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 4}}}})),
             "zero_optimization.stage = 4: ZeRO stages are 0 (off), 1 (optimizer states), 2 (and gradients) and 3");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"reduce_bucket_size", -1}}}})),
             "zero_optimization.reduce_bucket_size = -1: expected an integer >= 0");
  EXPECT_HAS(config_error(with_micro({{"fp16", {{"enabled", true}}}, {"bf16", {{"enabled", true}}}})),
             "fp16 and bf16 are both enabled");
  EXPECT_HAS(config_error(with_micro({{"fp16", {{"min_loss_scale", 0}}}})),
             "fp16.min_loss_scale = 0: expected a number > 0");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 2}, {"offload_param", {{"device", "cpu"}}}}}})),
             "parameter offload needs ZeRO stage 3 (zero_optimization.stage is 2)");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"offload_optimizer", {{"device", "cpu"}}}}}})),
             "optimizer offload needs ZeRO stage 1, 2 or 3");
  EXPECT_HAS(config_error(with_micro(
                 {{"zero_optimization", {{"stage", 2}, {"offload_optimizer", {{"device", "cpu"}, {"ratio", 0.3}}}}}})),
             "a partial offload (ratio 0.3 < 1) needs ZeRO stage 3");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"offload_optimizer", {{"ratio", 1.5}}}}}})),
             "ratio = 1.5: expected a number in [0, 1]");
  EXPECT_HAS(config_error(with_micro({{"steps_per_print", 0}})), "steps_per_print = 0: expected an integer >= 1");
}

TEST(ConfigErrors, AutoValuesAreHuggingFacePlaceholders) {
  EXPECT_HAS(config_error({{"train_micro_batch_size_per_gpu", "auto"}}),
             "ds.json: train_micro_batch_size_per_gpu = \"auto\": \"auto\" is a Hugging Face Trainer placeholder");
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 3}, {"reduce_bucket_size", "auto"}}}})),
             "zero_optimization.reduce_bucket_size = \"auto\"");
  EXPECT_HAS(config_error(with_micro({{"optimizer", {{"type", "AdamW"}, {"params", {{"lr", "auto"}}}}}})),
             "optimizer.params.lr = \"auto\"");
  EXPECT_HAS(config_error(with_micro({{"gradient_clipping", "auto"}})), "gradient_clipping = \"auto\"");
}

TEST(ConfigErrors, AliasesAndOldNames) {
  const Config c = Config::from_json(
      with_micro({{"zero_optimization", {{"stage", 3}, {"prefetch_bucket_size", 7}, {"max_live_parameters", 9}}},
                  {"bfloat16", {{"enabled", true}}}}),
      1);
  EXPECT_EQ(c.zero.stage3_prefetch_bucket_size, 7);
  EXPECT_EQ(c.zero.stage3_max_live_parameters, 9);
  EXPECT_TRUE(c.bf16);
  EXPECT_HAS(config_error(with_micro(
                 {{"zero_optimization", {{"stage3_prefetch_bucket_size", 1}, {"prefetch_bucket_size", 2}}}})),
             "the same setting as zero_optimization.stage3_prefetch_bucket_size");
  EXPECT_HAS(config_error(with_micro({{"bf16", {{"enabled", true}}}, {"bfloat16", {{"enabled", true}}}})),
             "give bf16 or its older name bfloat16, not both");
}

TEST(ConfigText, DuplicateKeysBadJsonAndFiles) {
  EXPECT_HAS(error_of([] { Config::from_string(R"({"train_micro_batch_size_per_gpu": 1,
                                                 "zero_optimization": {"stage": 1, "stage": 2}})", 1); }),
             "config string: the key 'zero_optimization.stage' appears twice");
  EXPECT_HAS(error_of([] { Config::from_string("{\"train_batch_size\": 1,", 1); }), "config string: not valid JSON");
  EXPECT_HAS(error_of([] { Config::from_file("/nonexistent/ds.json", 1); }),
             "cannot read the DeepSpeed config /nonexistent/ds.json");
  const std::string path = (std::filesystem::temp_directory_path() / "zt_config_test.json").string();
  {
    std::ofstream out(path);
    out << R"({"train_batch_size": 16, "gradient_accumulation_steps": 2})";
  }
  EXPECT_EQ(Config::from_file(path, 4).train_micro_batch_size_per_gpu, 2);
  std::filesystem::remove(path);
  {
    std::ofstream out(path);
    out << R"({"train_batch_size": 16, "zero_optimization": {"stage": 5}})";
  }
  EXPECT_HAS(error_of([&] { Config::from_file(path, 1); }), path + ": zero_optimization.stage = 5");
  std::filesystem::remove(path);
}

// offload_param takes DeepSpeed's NVMe form (stage 3), and then needs its folder.
TEST(Config, ParamOffloadToNvme) {
  const Config c = Config::from_json(
      with_micro({{"zero_optimization",
                   {{"stage", 3},
                    {"offload_param",
                     {{"device", "nvme"}, {"nvme_path", "/local_nvme"}, {"buffer_count", 4}, {"max_in_cpu", 0}}}}}}),
      1);
  EXPECT_EQ(c.zero.offload_param.device, "nvme");
  EXPECT_EQ(c.zero.offload_param.nvme_path, "/local_nvme");
  EXPECT_EQ(c.zero.offload_param.buffer_count, 4);
  EXPECT_EQ(c.zero.offload_param.max_in_cpu, 0);
  EXPECT_HAS(config_error(with_micro({{"zero_optimization", {{"stage", 3}, {"offload_param", {{"device", "nvme"}}}}}})),
             "zero_optimization.offload_param.nvme_path");
}

}  // namespace
}  // namespace zt::engine
