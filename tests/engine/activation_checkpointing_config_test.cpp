// DeepSpeed's activation_checkpointing section: every key read with DeepSpeed's default, the
// section's presence turning checkpointing on, and each bad value an error naming its key.
#include <gtest/gtest.h>

#include "error_text.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/config.hpp"

namespace zt::engine {
namespace {

using nlohmann::json;

ActivationCheckpointingConfig parse(const json& section) {
  json j = {{"train_micro_batch_size_per_gpu", 1}};
  if (!section.is_discarded()) j["activation_checkpointing"] = section;
  return Config::from_json(j, 1, "ds.json").activation_checkpointing;
}

std::string error_of(const json& section) {
  return zt::test::error_of([&] { parse(section); });
}

#define EXPECT_ERROR(section, needle)                                                               \
  do {                                                                                              \
    const std::string e_ = error_of(section);                                                       \
    EXPECT_NE(e_.find(needle), std::string::npos) << "expected \"" << (needle) << "\" in\n" << e_; \
  } while (0)

TEST(ActivationCheckpointingConfig, EveryKey) {
  const auto c = parse({{"partition_activations", true},
                        {"cpu_checkpointing", true},
                        {"number_checkpoints", 4},
                        {"contiguous_memory_optimization", false},
                        {"synchronize_checkpoint_boundary", false},
                        {"profile", false}});
  EXPECT_TRUE(c.enabled);
  EXPECT_TRUE(c.partition_activations);
  EXPECT_TRUE(c.cpu_checkpointing);
  EXPECT_EQ(c.number_checkpoints, 4);
  EXPECT_EQ(parse({{"number_checkpoints", 8.0}}).number_checkpoints, 8);  // an integral float, as elsewhere
}

TEST(ActivationCheckpointingConfig, DefaultsAndPresence) {
  const auto absent = parse(json(json::value_t::discarded));
  EXPECT_FALSE(absent.enabled);
  EXPECT_FALSE(parse(nullptr).enabled);  // null reads as absent
  // DeepSpeed's documented section, every value at its default: checkpointing of every block.
  const auto documented = parse({{"partition_activations", false},
                                 {"cpu_checkpointing", false},
                                 {"contiguous_memory_optimization", false},
                                 {"number_checkpoints", nullptr},
                                 {"synchronize_checkpoint_boundary", false},
                                 {"profile", false}});
  EXPECT_TRUE(documented.enabled);
  EXPECT_FALSE(documented.partition_activations);
  EXPECT_FALSE(documented.cpu_checkpointing);
  EXPECT_FALSE(documented.number_checkpoints.has_value());
  EXPECT_TRUE(parse(json::object()).enabled);
}

TEST(ActivationCheckpointingConfig, BadValuesNameTheKey) {
  EXPECT_ERROR(true, "ds.json: activation_checkpointing = true: expected an object");
  EXPECT_ERROR(json({{"cpu_checkpointing", "yes"}}),
               "ds.json: activation_checkpointing.cpu_checkpointing = \"yes\": expected true or false");
  EXPECT_ERROR(json({{"partition_activations", 1}}), "activation_checkpointing.partition_activations = 1: expected true");
  EXPECT_ERROR(json({{"number_checkpoints", 0}}),
               "activation_checkpointing.number_checkpoints = 0: expected an integer >= 1");
  EXPECT_ERROR(json({{"number_checkpoints", 2.5}}), "activation_checkpointing.number_checkpoints = 2.5: expected an integer");
  EXPECT_ERROR(json({{"number_checkpoints", false}}), "activation_checkpointing.number_checkpoints = false");
  EXPECT_ERROR(json({{"number_checkpoints", "auto"}}), "activation_checkpointing.number_checkpoints");
  for (const char* key : {"contiguous_memory_optimization", "synchronize_checkpoint_boundary", "profile"})
    EXPECT_ERROR(json({{key, true}}), std::string("activation_checkpointing.") + key +
                                          " = true: a DeepSpeed setting that this version of zt does not support "
                                          "(its default is false");
  EXPECT_ERROR(json({{"cpu_checkpoint", true}}),
               "ds.json: unknown key 'activation_checkpointing.cpu_checkpoint' (did you mean 'cpu_checkpointing'?)");
  EXPECT_ERROR(json({{"partitioned_activations", true}}),
               "unknown key 'activation_checkpointing.partitioned_activations' (did you mean 'partition_activations'?)");
}

}  // namespace
}  // namespace zt::engine
