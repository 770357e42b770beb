#include <cctype>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "zt/core/error.hpp"
#include "zt/io/atomic_file.hpp"
#include "zt/io/safetensors_sharded.hpp"

namespace zt::io {
namespace fs = std::filesystem;

uint64_t parse_byte_size(const std::string& text) {
  struct Unit { const char* suffix; uint64_t scale; };
  // Longest suffixes first, so that "GiB" is not read as "B".
  static const Unit units[] = {{"GIB", 1ull << 30}, {"MIB", 1ull << 20}, {"KIB", 1ull << 10}, {"GB", 1000000000ull},
                               {"MB", 1000000ull},  {"KB", 1000ull},     {"B", 1ull},          {"", 1ull}};
  std::string upper;
  for (char c : text) upper += char(std::toupper(static_cast<unsigned char>(c)));
  for (const Unit& u : units) {
    const size_t n = std::char_traits<char>::length(u.suffix);
    if (upper.size() <= n || upper.compare(upper.size() - n, n, u.suffix) != 0) continue;
    const std::string digits = text.substr(0, text.size() - n);
    size_t used = 0;
    uint64_t value = 0;
    try {
      value = std::stoull(digits, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == digits.size() && !digits.empty() && std::isdigit(static_cast<unsigned char>(digits[0]))) {
      ZT_CHECK(value <= UINT64_MAX / u.scale, "byte size '", text, "' is too large");
      // transformers reads a lower-case "b" after the unit as bits ("5Gb").
      const bool bits = n >= 2 && text.back() == 'b' && u.scale != 1 && upper.find("IB") == std::string::npos;
      return bits ? value * u.scale / 8 : value * u.scale;
    }
  }
  ZT_THROW("cannot read '", text, "' as a size in bytes (expected e.g. 5GB, 500MB, 2GiB or 1048576)");
}

std::vector<std::vector<size_t>> plan_safetensors_shards(const std::vector<uint64_t>& tensor_bytes,
                                                         uint64_t max_shard_bytes) {
  ZT_CHECK(max_shard_bytes > 0, "the maximum shard size must be positive");
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < tensor_bytes.size(); ++i) {
    if (tensor_bytes[i] > max_shard_bytes) {
      shards.push_back({i});  // alone; the shard being filled stays open
      continue;
    }
    if (!current.empty() && current_bytes + tensor_bytes[i] > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += tensor_bytes[i];
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
  return shards;
}

namespace {

std::string shard_name(const std::string& prefix, size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu", i + 1, n);
  return prefix + buf + ".safetensors";
}

// Files an earlier save with this prefix left that the new one does not name; a reader that
// finds a stale index or shard next to the new files would load a mix of two checkpoints.
void remove_stale(const fs::path& folder, const std::string& prefix, const std::set<std::string>& keep) {
  const std::regex shard(std::regex_replace(prefix, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                         R"((-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  for (const auto& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && !keep.count(name) && std::regex_match(name, shard)) {
      std::error_code ec;
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace

ShardedSaveResult save_safetensors_sharded(const std::string& folder,
                                           const std::vector<std::pair<std::string, Tensor>>& tensors,
                                           uint64_t max_shard_bytes,
                                           const std::map<std::string, std::string>& metadata,
                                           const std::string& prefix) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  ZT_CHECK(fs::is_directory(folder), "cannot create the checkpoint folder '", folder, "': ", ec.message());

  std::vector<uint64_t> sizes;
  ShardedSaveResult result;
  for (const auto& [name, t] : tensors) {
    ZT_CHECK(t.defined(), "cannot save tensor '", name, "' to '", folder, "': it is undefined");
    sizes.push_back(t.nbytes());
    result.total_size += t.nbytes();
  }
  const auto plan = plan_safetensors_shards(sizes, max_shard_bytes);

  std::set<std::string> keep;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < plan.size(); ++s) {
    const std::string file = plan.size() == 1 ? prefix + ".safetensors" : shard_name(prefix, s, plan.size());
    std::vector<std::pair<std::string, Tensor>> part;
    for (size_t i : plan[s]) {
      part.push_back(tensors[i]);
      weight_map[tensors[i].first] = file;
    }
    const std::string path = (fs::path(folder) / file).string();
    save_safetensors(path, part, metadata);
    result.files.push_back(path);
    keep.insert(file);
  }
  if (plan.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", result.total_size}}}, {"weight_map", weight_map}};
    const std::string index_file = prefix + ".safetensors.index.json";
    result.index_path = (fs::path(folder) / index_file).string();
    // transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n"; the same text.
    const std::string text = index.dump(2) + "\n";
    AtomicFile out(result.index_path);
    out.append(text.data(), text.size());
    out.commit();
    keep.insert(index_file);
  }
  remove_stale(folder, prefix, keep);
  return result;
}

}  // namespace zt::io
