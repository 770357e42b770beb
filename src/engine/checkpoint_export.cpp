// Consolidating a sharded checkpoint's f32 master weights into one model: a Hugging Face folder
// or a single safetensors file.
#include <filesystem>

#include "zt/core/error.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/io/atomic_file.hpp"
#include "zt/io/safetensors.hpp"
#include "zt/io/safetensors_sharded.hpp"

namespace zt::engine {

namespace fs = std::filesystem;

std::vector<std::pair<std::string, Tensor>> consolidate_checkpoint(const std::string& path) {
  const std::string tag_dir = resolve_checkpoint(path);
  CheckpointShards shards(tag_dir, read_checkpoint_meta(tag_dir));
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& p : shards.meta().parameters) out.emplace_back(p.name, shards.read_parameter(p));
  return out;
}

void export_checkpoint_hf(const std::string& path, const std::string& out_folder, uint64_t max_shard_bytes) {
  const std::string tag_dir = resolve_checkpoint(path);
  const CheckpointMeta meta = read_checkpoint_meta(tag_dir);
  ZT_CHECK(!meta.model_config.is_null(), "checkpoint ", tag_dir,
           " was not saved from a causal language model (its meta.json has no model_config), so it has no "
           "Hugging Face config.json; export it with --to safetensors");
  fs::create_directories(out_folder);
  const auto tensors = consolidate_checkpoint(tag_dir);
  io::save_safetensors_sharded(out_folder, tensors, max_shard_bytes);
  const std::string config = meta.model_config.dump(2) + "\n";
  io::AtomicFile file((fs::path(out_folder) / "config.json").string());
  file.append(config.data(), config.size());
  file.commit();
}

void export_checkpoint_safetensors(const std::string& path, const std::string& out_file) {
  const auto parent = fs::path(out_file).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  io::save_safetensors(out_file, consolidate_checkpoint(path));
}

}  // namespace zt::engine
