// Engine checkpoints on disk: what a tag folder holds, how its shards are read back at another
// world size or stage, and export to Hugging Face / safetensors (docs/ARCHITECTURE.md,
// "Checkpoints").
//
//   DIR/latest                                   the newest tag (written last)
//   DIR/TAG/meta.json                            the flat layout and every non-tensor state
//   DIR/TAG/zero_shard_RRRRR_of_NNNNN.safetensors  rank R's partition of the flat layout:
//                                                  "master" (f32) and one f32 tensor per
//                                                  optimizer state ("exp_avg", ...)
//
// Letters: N ranks at save time, P = total / N elements per shard. Shard r holds the flat
// elements [r * P, (r + 1) * P), whatever the stage was.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "zt/core/tensor.hpp"

namespace zt::io {
class SafetensorsReader;
}

namespace zt::engine {

struct CheckpointParameter {
  std::string name;
  Shape shape;
  int64_t offset = 0;  // elements into the flat layout
  int64_t numel = 0;
};

// meta.json of one tag.
struct CheckpointMeta {
  static constexpr int kFormatVersion = 1;
  std::string tag;
  uint64_t save_id = 0;  // also in every shard's metadata: shards of one save belong together
  int world_size = 1, stage = 0;
  int64_t alignment = 16, total = 0, partition_size = 0;
  std::string storage_dtype = "f32";
  std::vector<CheckpointParameter> parameters;  // in flat order
  nlohmann::json model_config;                  // a CausalLM's Hugging Face config; null otherwise
  std::string optimizer;                        // its name ("AdamW")
  std::vector<std::string> optimizer_states;    // the state tensors in every shard; empty before a step
  int64_t optimizer_step = 0;
  int64_t global_steps = 0, micro_steps = 0, skipped_steps = 0;
  nlohmann::json lr_scheduler, loss_scaler, client_state;
  std::vector<uint64_t> data_positions;  // one per rank; empty without attached data

  nlohmann::json to_json() const;
  // path names the file in errors.
  static CheckpointMeta from_json(const nlohmann::json& j, const std::string& path);
};

std::string checkpoint_shard_name(int rank, int world_size);  // "zero_shard_00001_of_00004.safetensors"
// The tag `DIR/latest` names; a zt::Error naming the file when it is missing or empty.
std::string read_latest_tag(const std::string& dir);
// The tag folder of a checkpoint: DIR/TAG, DIR/<latest> when tag is empty, or path itself when
// it is a tag folder (holds meta.json). A zt::Error saying what is missing.
std::string resolve_checkpoint(const std::string& path, const std::string& tag = "");
CheckpointMeta read_checkpoint_meta(const std::string& tag_dir);

// Reads flat ranges of a saved tensor ("master", "exp_avg", ...) from whichever shards hold
// them; shards are opened (and checked against meta.json) on first use.
class CheckpointShards {
 public:
  CheckpointShards(std::string tag_dir, CheckpointMeta meta);
  ~CheckpointShards();
  // Copies the saved flat elements [begin, end) of tensor `name` into dst (end - begin floats).
  void read(const std::string& name, int64_t begin, int64_t end, float* dst);
  // Opens and checks every shard that holds saved flat elements of [begin, end).
  void check(int64_t begin, int64_t end);
  // One parameter, whole, in f32 with its shape.
  Tensor read_parameter(const CheckpointParameter& p);
  const CheckpointMeta& meta() const { return meta_; }

 private:
  const io::SafetensorsReader& shard(int rank);
  std::string tag_dir_;
  CheckpointMeta meta_;
  std::vector<std::unique_ptr<io::SafetensorsReader>> shards_;
};

// The f32 master weights of a checkpoint (a tag folder or DIR with `latest`), parameter by
// parameter under their names.
std::vector<std::pair<std::string, Tensor>> consolidate_checkpoint(const std::string& path);
// A Hugging Face model folder: config.json (the checkpoint must come from a CausalLM) and
// model.safetensors, sharded past max_shard_bytes.
void export_checkpoint_hf(const std::string& path, const std::string& out_folder, uint64_t max_shard_bytes);
// One safetensors file of the f32 master weights.
void export_checkpoint_safetensors(const std::string& path, const std::string& out_file);

// A seam for fault tests: called at named points of a save ("shard_partial" after a shard's
// first tensor, "shards_written", "meta_written", "published" before `latest`). Empty: none.
using CheckpointFaultHook = std::function<void(const std::string& point)>;
void set_checkpoint_fault_hook(CheckpointFaultHook hook);

}  // namespace zt::engine
