#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "io/near_name.hpp"
#include "zt/core/error.hpp"
#include "zt/io/safetensors_sharded.hpp"

namespace zt::io {
namespace fs = std::filesystem;
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The single file in folder whose name ends with suffix, or "" when there is none; an error
// when several would be an ambiguous guess.
std::string only_file_ending(const fs::path& folder, const std::string& suffix) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && ends_with(entry.path().filename().string(), suffix)) {
      found.push_back(entry.path().string());
    }
  }
  if (found.size() > 1) {
    std::string list;
    for (const std::string& f : found) list += "\n  " + f;
    ZT_THROW("folder '", folder.string(), "' holds several *", suffix, " files and no model.safetensors[.index.json];",
             " name the one to load:", list);
  }
  return found.empty() ? std::string() : found.front();
}

}  // namespace

ShardedSafetensorsReader::ShardedSafetensorsReader(const std::string& folder_or_file) : source_(folder_or_file) {
  std::string single;
  ZT_CHECK(fs::exists(folder_or_file), "checkpoint '", folder_or_file, "' does not exist");
  if (fs::is_directory(folder_or_file)) {
    const fs::path folder(folder_or_file);
    if (fs::exists(folder / "model.safetensors.index.json")) {
      index_path_ = (folder / "model.safetensors.index.json").string();
    } else if (fs::exists(folder / "model.safetensors")) {
      single = (folder / "model.safetensors").string();
    } else if (std::string index = only_file_ending(folder, ".safetensors.index.json"); !index.empty()) {
      index_path_ = index;
    } else if (std::string file = only_file_ending(folder, ".safetensors"); !file.empty()) {
      single = file;
    } else {
      ZT_THROW("folder '", folder_or_file, "' holds no model.safetensors, model.safetensors.index.json or other ",
               "*.safetensors file");
    }
  } else if (ends_with(folder_or_file, ".json")) {
    index_path_ = folder_or_file;
  } else {
    single = folder_or_file;
  }

  if (!single.empty()) {
    shards_.emplace_back(single);
    metadata_ = shards_.back().metadata();
    for (const TensorInfo& t : shards_.back().tensors()) {
      where_.emplace(t.name, std::make_pair(size_t{0}, tensors_.size()));
      tensors_.push_back(t);
    }
    return;
  }

  std::ifstream in(index_path_);
  ZT_CHECK(in.good(), "cannot open the checkpoint index '", index_path_, "'");
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    ZT_THROW("checkpoint index '", index_path_, "' is not valid JSON: ", e.what());
  }
  ZT_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
           "checkpoint index '", index_path_, "' has no \"weight_map\" object");
  if (index.contains("metadata")) {
    ZT_CHECK(index["metadata"].is_object(), "checkpoint index '", index_path_, "': \"metadata\" is not an object");
    for (auto it = index["metadata"].begin(); it != index["metadata"].end(); ++it) {
      metadata_[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }

  // Shards open in the order of their file names (model-00001-of-..., model-00002-of-...).
  std::map<std::string, std::vector<std::string>> by_file;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    ZT_CHECK(it->is_string(), "checkpoint index '", index_path_, "': weight_map[\"", it.key(), "\"] is ", it->dump(),
             "; expected a shard file name");
    const std::string file = it->get<std::string>();
    ZT_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
             "checkpoint index '", index_path_, "': weight_map[\"", it.key(), "\"] = \"", file,
             "\" is not a file name in the index's folder");
    by_file[file].push_back(it.key());
  }
  const fs::path folder = fs::path(index_path_).parent_path();
  for (const auto& [file, names] : by_file) {
    const std::string shard_path = (folder / file).string();
    ZT_CHECK(fs::exists(shard_path), "checkpoint index '", index_path_, "' names shard '", file, "' (holding '",
             names.front(), "' and ", names.size() - 1, " more) but '", shard_path, "' does not exist");
    shards_.emplace_back(shard_path);
    const SafetensorsReader& shard = shards_.back();
    for (const std::string& name : names) {
      if (!shard.contains(name)) {
        ZT_THROW("checkpoint index '", index_path_, "' places tensor '", name, "' in '", file,
                 "' but that shard does not hold it", did_you_mean(name, shard.names()));
      }
    }
    // Only what the index names is part of the checkpoint, as transformers reads it.
    for (const TensorInfo& t : shard.tensors()) {
      const auto& listed = index["weight_map"];
      if (listed.contains(t.name) && listed[t.name] == file) {
        where_.emplace(t.name, std::make_pair(shards_.size() - 1, tensors_.size()));
        tensors_.push_back(t);
      }
    }
  }
}

ShardedSafetensorsReader::~ShardedSafetensorsReader() = default;
ShardedSafetensorsReader::ShardedSafetensorsReader(ShardedSafetensorsReader&&) noexcept = default;
ShardedSafetensorsReader& ShardedSafetensorsReader::operator=(ShardedSafetensorsReader&&) noexcept = default;

std::vector<std::string> ShardedSafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

bool ShardedSafetensorsReader::contains(const std::string& name) const { return where_.count(name) != 0; }

const TensorInfo& ShardedSafetensorsReader::info(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) {
    ZT_THROW("checkpoint '", source_, "' has no tensor '", name, "'", did_you_mean(name, names()), " (it holds ",
             tensors_.size(), " tensors in ", shards_.size(), " file", shards_.size() == 1 ? "" : "s", ")");
  }
  return tensors_[it->second.second];
}

const SafetensorsReader& ShardedSafetensorsReader::shard_reader(const std::string& name) const {
  (void)info(name);  // the error for a missing name
  return shards_[where_.at(name).first];
}

Tensor ShardedSafetensorsReader::read(const std::string& name) const { return shard_reader(name).read(name); }
Tensor ShardedSafetensorsReader::read_as(const std::string& name, DType dtype) const {
  return shard_reader(name).read_as(name, dtype);
}
std::string_view ShardedSafetensorsReader::bytes(const std::string& name) const {
  return shard_reader(name).bytes(name);
}
const std::string& ShardedSafetensorsReader::shard_of(const std::string& name) const {
  return shard_reader(name).path();
}

}  // namespace zt::io
