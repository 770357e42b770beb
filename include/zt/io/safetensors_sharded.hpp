// Sharded safetensors checkpoints, as Hugging Face writes them past `max_shard_size`:
// model-00001-of-00003.safetensors, ... and model.safetensors.index.json:
//   {"metadata": {"total_size": <bytes of tensor data>}, "weight_map": {"<tensor>": "<shard file>"}}
// A checkpoint small enough for one shard is a single model.safetensors and no index.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zt/io/safetensors.hpp"

namespace zt::io {

// Finds a tensor in whichever shard holds it. Opened from a folder (model.safetensors.index.json,
// else model.safetensors, else the folder's only *.safetensors.index.json or *.safetensors), an
// index file, or a single .safetensors file. Every shard is mapped and validated on open, and
// every tensor the index names must be in the shard it names.
class ShardedSafetensorsReader {
 public:
  explicit ShardedSafetensorsReader(const std::string& folder_or_file);
  ~ShardedSafetensorsReader();
  ShardedSafetensorsReader(ShardedSafetensorsReader&&) noexcept;
  ShardedSafetensorsReader& operator=(ShardedSafetensorsReader&&) noexcept;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // shard by shard, file order
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  Tensor read(const std::string& name) const;
  Tensor read_as(const std::string& name, DType dtype) const;
  std::string_view bytes(const std::string& name) const;
  const std::string& shard_of(const std::string& name) const;  // the shard's path
  const std::vector<SafetensorsReader>& shards() const { return shards_; }
  const std::string& index_path() const { return index_path_; }  // "" without an index
  // The index's "metadata" (values as JSON text for non-strings, e.g. total_size) or, without an
  // index, the single file's "__metadata__".
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  const SafetensorsReader& shard_reader(const std::string& name) const;

  std::string source_;
  std::string index_path_;
  std::vector<SafetensorsReader> shards_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, std::pair<size_t, size_t>> where_;  // name -> (shard, position in tensors_)
  std::map<std::string, std::string> metadata_;
};

// Parses a shard size as transformers does: "5GB" (10^9), "500MB", "2GiB" (2^30), "100KB", or
// a plain number of bytes.
uint64_t parse_byte_size(const std::string& text);

struct ShardedSaveResult {
  std::vector<std::string> files;  // the shard paths, in order
  std::string index_path;          // "" when everything fit in one file
  uint64_t total_size = 0;         // bytes of tensor data
};

// Splits tensors into shards of at most max_shard_bytes of tensor data each, in the given
// order, as transformers does: a tensor that would tip the current shard over starts the next
// one, and a tensor larger than the limit gets a shard of its own. One shard is written as
// <prefix>.safetensors with no index; more as <prefix>-0000i-of-0000n.safetensors and
// <prefix>.safetensors.index.json. Every file is written atomically, the index last; shards
// of an earlier save with the same prefix that the new index does not name are then removed.
ShardedSaveResult save_safetensors_sharded(
    const std::string& folder, const std::vector<std::pair<std::string, Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata = default_safetensors_metadata(),
    const std::string& prefix = "model");

// The shard plan alone: which tensors (indices into the input) go to which shard.
std::vector<std::vector<size_t>> plan_safetensors_shards(const std::vector<uint64_t>& tensor_bytes,
                                                         uint64_t max_shard_bytes);

}  // namespace zt::io
