// The checkpoint folder's files: meta.json, shard names, `latest`, and reading flat ranges
// back out of the shards.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "zt/core/error.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::engine {

namespace fs = std::filesystem;

namespace {

CheckpointFaultHook& fault_hook() {
  static CheckpointFaultHook hook;
  return hook;
}

void read_exactly(const std::string& path, uint64_t offset, char* dst, size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ZT_CHECK(fd >= 0, "cannot open checkpoint shard ", path, ": ", std::strerror(errno));
  while (n > 0) {
    const ssize_t got = ::pread(fd, dst, std::min<size_t>(n, size_t(1) << 30), off_t(offset));
    if (got <= 0) {
      const int err = errno;
      ::close(fd);
      ZT_THROW("reading checkpoint shard ", path, " at byte ", offset, ": ", got == 0 ? "unexpected end of file" : std::strerror(err));
    }
    dst += got;
    offset += uint64_t(got);
    n -= size_t(got);
  }
  ::close(fd);
}

template <typename T>
T get(const nlohmann::json& j, const char* key, const std::string& path) {
  ZT_CHECK(j.contains(key), "checkpoint metadata ", path, ": missing key \"", key, "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    ZT_THROW("checkpoint metadata ", path, ": key \"", key, "\" has the wrong type (", j.at(key).dump(), ")");
  }
}

}  // namespace

void set_checkpoint_fault_hook(CheckpointFaultHook hook) { fault_hook() = std::move(hook); }

// Used by the engine's save.
void checkpoint_fault_point(const std::string& point) {
  if (fault_hook()) fault_hook()(point);
}

nlohmann::json CheckpointMeta::to_json() const {
  nlohmann::json params = nlohmann::json::array();
  for (const auto& p : parameters)
    params.push_back({{"name", p.name}, {"shape", p.shape}, {"offset", p.offset}, {"numel", p.numel}});
  return {{"format", "zt-zero-checkpoint"},
          {"format_version", kFormatVersion},
          {"tag", tag},
          {"save_id", save_id},
          {"world_size", world_size},
          {"stage", stage},
          {"alignment", alignment},
          {"total", total},
          {"partition_size", partition_size},
          {"storage_dtype", storage_dtype},
          {"dtype", "f32"},
          {"parameters", params},
          {"model_config", model_config},
          {"optimizer", optimizer},
          {"optimizer_states", optimizer_states},
          {"optimizer_step", optimizer_step},
          {"global_steps", global_steps},
          {"micro_steps", micro_steps},
          {"skipped_steps", skipped_steps},
          {"lr_scheduler", lr_scheduler},
          {"loss_scaler", loss_scaler},
          {"data_positions", data_positions},
          {"client_state", client_state}};
}

CheckpointMeta CheckpointMeta::from_json(const nlohmann::json& j, const std::string& path) {
  ZT_CHECK(j.is_object() && j.value("format", "") == "zt-zero-checkpoint", "checkpoint metadata ", path,
           " is not a zt checkpoint's meta.json (no \"format\": \"zt-zero-checkpoint\")");
  const int version = get<int>(j, "format_version", path);
  ZT_CHECK(version == kFormatVersion, "checkpoint metadata ", path, ": format version ", version,
           " is not the supported version ", kFormatVersion);
  CheckpointMeta m;
  m.tag = get<std::string>(j, "tag", path);
  m.save_id = get<uint64_t>(j, "save_id", path);
  m.world_size = get<int>(j, "world_size", path);
  m.stage = get<int>(j, "stage", path);
  m.alignment = get<int64_t>(j, "alignment", path);
  m.total = get<int64_t>(j, "total", path);
  m.partition_size = get<int64_t>(j, "partition_size", path);
  m.storage_dtype = get<std::string>(j, "storage_dtype", path);
  ZT_CHECK(m.world_size >= 1 && m.partition_size * m.world_size == m.total, "checkpoint metadata ", path,
           ": world_size ", m.world_size, " x partition_size ", m.partition_size, " != total ", m.total);
  ZT_CHECK(j.contains("parameters") && j["parameters"].is_array(), "checkpoint metadata ", path,
           ": missing the \"parameters\" list");
  for (const auto& p : j["parameters"]) {
    CheckpointParameter c;
    c.name = get<std::string>(p, "name", path);
    c.shape = get<Shape>(p, "shape", path);
    c.offset = get<int64_t>(p, "offset", path);
    c.numel = get<int64_t>(p, "numel", path);
    ZT_CHECK(c.numel == shape_numel(c.shape) && c.offset >= 0 && c.offset + c.numel <= m.total, "checkpoint metadata ",
             path, ": parameter ", c.name, " (offset ", c.offset, ", numel ", c.numel, ") does not fit the layout");
    m.parameters.push_back(std::move(c));
  }
  m.model_config = j.value("model_config", nlohmann::json());
  m.optimizer = get<std::string>(j, "optimizer", path);
  m.optimizer_states = get<std::vector<std::string>>(j, "optimizer_states", path);
  m.optimizer_step = get<int64_t>(j, "optimizer_step", path);
  m.global_steps = get<int64_t>(j, "global_steps", path);
  m.micro_steps = get<int64_t>(j, "micro_steps", path);
  m.skipped_steps = get<int64_t>(j, "skipped_steps", path);
  m.lr_scheduler = j.value("lr_scheduler", nlohmann::json());
  m.loss_scaler = j.value("loss_scaler", nlohmann::json());
  m.client_state = j.value("client_state", nlohmann::json::object());
  m.data_positions = get<std::vector<uint64_t>>(j, "data_positions", path);
  return m;
}

std::string checkpoint_shard_name(int rank, int world_size) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "zero_shard_%05d_of_%05d.safetensors", rank, world_size);
  return buf;
}

std::string read_latest_tag(const std::string& dir) {
  const std::string path = (fs::path(dir) / "latest").string();
  std::ifstream in(path);
  ZT_CHECK(in.good(), "checkpoint ", dir, ": no file 'latest' naming the newest tag (", path,
           "); give the tag explicitly or check the folder");
  std::string tag;
  std::getline(in, tag);
  while (!tag.empty() && (tag.back() == '\n' || tag.back() == '\r' || tag.back() == ' ')) tag.pop_back();
  ZT_CHECK(!tag.empty(), "checkpoint ", path, " is empty; it should name the newest tag");
  return tag;
}

std::string resolve_checkpoint(const std::string& path, const std::string& tag) {
  ZT_CHECK(fs::is_directory(path), "checkpoint ", path, " is not a folder");
  if (tag.empty() && fs::exists(fs::path(path) / "meta.json")) return path;
  const std::string t = tag.empty() ? read_latest_tag(path) : tag;
  const fs::path dir = fs::path(path) / t;
  ZT_CHECK(fs::is_directory(dir), "checkpoint ", path, ": no tag '", t, "' (", dir.string(), " is missing)",
           tag.empty() ? " although 'latest' names it" : "");
  return dir.string();
}

CheckpointMeta read_checkpoint_meta(const std::string& tag_dir) {
  const std::string path = (fs::path(tag_dir) / "meta.json").string();
  std::ifstream in(path);
  ZT_CHECK(in.good(), "checkpoint ", tag_dir, ": missing meta.json (", path, "); the save did not finish");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    ZT_THROW("checkpoint metadata ", path, " is not valid JSON (truncated?): ", e.what());
  }
  return CheckpointMeta::from_json(j, path);
}

CheckpointShards::CheckpointShards(std::string tag_dir, CheckpointMeta meta)
    : tag_dir_(std::move(tag_dir)), meta_(std::move(meta)) {
  shards_.resize(size_t(meta_.world_size));
}

CheckpointShards::~CheckpointShards() = default;

const io::SafetensorsReader& CheckpointShards::shard(int rank) {
  auto& slot = shards_[size_t(rank)];
  if (slot) return *slot;
  const std::string path = (fs::path(tag_dir_) / checkpoint_shard_name(rank, meta_.world_size)).string();
  ZT_CHECK(fs::exists(path), "checkpoint ", tag_dir_, ": missing shard ", path, " (rank ", rank, " of the ",
           meta_.world_size, " ranks that saved it)");
  auto reader = std::make_unique<io::SafetensorsReader>(path);  // validates the header against the size
  const auto& md = reader->metadata();
  const auto id = md.find("save_id");
  ZT_CHECK(id != md.end() && id->second == std::to_string(meta_.save_id), "checkpoint shard ", path,
           " belongs to another save than ", tag_dir_, "/meta.json (save_id ",
           id == md.end() ? std::string("missing") : id->second, ", expected ", meta_.save_id, ")");
  std::vector<std::string> names{"master"};
  names.insert(names.end(), meta_.optimizer_states.begin(), meta_.optimizer_states.end());
  for (const auto& name : names) {
    const auto& info = reader->info(name);
    ZT_CHECK(info.dtype == DType::f32 && shape_numel(info.shape) == meta_.partition_size, "checkpoint shard ", path,
             ": tensor '", name, "' is ", dtype_name(info.dtype), " ", shape_str(info.shape), ", expected f32 (",
             meta_.partition_size, ")");
  }
  slot = std::move(reader);
  return *slot;
}

void CheckpointShards::read(const std::string& name, int64_t begin, int64_t end, float* dst) {
  ZT_CHECK(begin >= 0 && end <= meta_.total && begin <= end, "checkpoint ", tag_dir_, ": range [", begin, ", ", end,
           ") is outside the saved layout of ", meta_.total, " elements");
  const int64_t p = meta_.partition_size;
  while (begin < end) {
    const int r = int(begin / p);
    const int64_t stop = std::min(end, int64_t(r + 1) * p);
    // pread rather than the reader's mapping: page faults on a fresh mapping read several
    // times slower than the kernel's sequential readahead.
    const io::SafetensorsReader& reader = shard(r);
    uint64_t data_size = 0;
    for (const auto& t : reader.tensors()) data_size = std::max(data_size, t.end);
    const uint64_t at = reader.file_size() - data_size + reader.info(name).begin + uint64_t(begin - int64_t(r) * p) * sizeof(float);
    read_exactly(reader.path(), at, reinterpret_cast<char*>(dst), size_t(stop - begin) * sizeof(float));
    dst += stop - begin;
    begin = stop;
  }
}

void CheckpointShards::check(int64_t begin, int64_t end) {
  ZT_CHECK(begin >= 0 && end <= meta_.total && begin <= end, "checkpoint ", tag_dir_, ": range [", begin, ", ", end,
           ") is outside the saved layout of ", meta_.total, " elements");
  const int64_t p = meta_.partition_size;
  for (int64_t r = begin / p; r < meta_.world_size && r * p < end; ++r) shard(int(r));
}

Tensor CheckpointShards::read_parameter(const CheckpointParameter& p) {
  Tensor t = Tensor::empty(p.shape, DType::f32);
  read("master", p.offset, p.offset + p.numel, t.data<float>());
  return t;
}

}  // namespace zt::engine
