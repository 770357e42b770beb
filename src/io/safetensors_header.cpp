// Parsing and validating safetensors headers. A header comes from a file that may be truncated,
// hand-edited or hostile, so every field is checked before anything is computed from it.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "zt/core/error.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

// The reference implementation refuses headers past 100 MB; a larger length means a corrupt
// file, and reading it as JSON would only waste memory.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypeNames[] = {
    {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"F64", DType::f64},
    {"I64", DType::i64}, {"I32", DType::i32}, {"I8", DType::i8},     {"U8", DType::u8},
    {"BOOL", DType::b8},
};

std::string json_type(const nlohmann::ordered_json& j) { return j.type_name(); }

uint64_t read_offset(const nlohmann::ordered_json& j, const std::string& path, const std::string& name,
                     int which) {
  ZT_CHECK(j.is_number_unsigned(), "safetensors file '", path, "': tensor '", name, "' has data_offsets[",
           which, "] = ", j.dump(), "; expected a non-negative integer");
  return j.get<uint64_t>();
}

TensorInfo parse_entry(const std::string& name, const nlohmann::ordered_json& entry, const std::string& path) {
  const std::string where = str("safetensors file '", path, "': tensor '", name, "'");
  ZT_CHECK(entry.is_object(), where, " is a JSON ", json_type(entry), "; expected an object with dtype, shape "
           "and data_offsets");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    ZT_CHECK(entry.contains(key), where, " has no \"", key, "\" key");
  }
  // Other keys are ignored, as the reference implementation does, for forward compatibility.
  TensorInfo info;
  info.name = name;

  const auto& dtype = entry["dtype"];
  ZT_CHECK(dtype.is_string(), where, " has dtype ", dtype.dump(), "; expected a string such as \"F32\"");
  const std::string dtype_str = dtype.get<std::string>();
  bool known = false;
  for (const DTypeName& d : kDTypeNames) {
    if (dtype_str == d.name) {
      info.dtype = d.dtype;
      known = true;
    }
  }
  ZT_CHECK(known, where, " has dtype \"", dtype_str,
           "\", which zt does not hold (F32, F16, BF16, F64, I64, I32, I8, U8, BOOL)");

  const auto& shape = entry["shape"];
  ZT_CHECK(shape.is_array(), where, " has shape ", shape.dump(), "; expected an array of integers");
  // numel is computed with an overflow check: a hostile shape must not wrap around to match
  // a small byte range.
  unsigned __int128 numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    ZT_CHECK(shape[i].is_number_unsigned(), where, " has shape ", shape.dump(), "; dimension ", i,
             " is not a non-negative integer");
    const uint64_t d = shape[i].get<uint64_t>();
    ZT_CHECK(d <= uint64_t(std::numeric_limits<int64_t>::max()), where, " has dimension ", i, " = ", d,
             ", too large");
    info.shape.push_back(int64_t(d));
    numel *= d;
    if (numel > std::numeric_limits<uint64_t>::max()) numel = std::numeric_limits<uint64_t>::max();
  }

  const auto& offsets = entry["data_offsets"];
  ZT_CHECK(offsets.is_array() && offsets.size() == 2, where, " has data_offsets ", offsets.dump(),
           "; expected [begin, end]");
  info.begin = read_offset(offsets[0], path, name, 0);
  info.end = read_offset(offsets[1], path, name, 1);
  ZT_CHECK(info.begin <= info.end, where, " has data_offsets [", info.begin, ", ", info.end,
           "] with begin past end");
  const unsigned __int128 expected = numel * dtype_size(info.dtype);
  ZT_CHECK(expected == info.end - info.begin, where, " (", dtype_str, ", shape ", shape.dump(), ") needs ",
           uint64_t(std::min<unsigned __int128>(expected, std::numeric_limits<uint64_t>::max())),
           " bytes but data_offsets [", info.begin, ", ", info.end, "] hold ", info.end - info.begin);
  return info;
}

}  // namespace

std::string safetensors_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypeNames) {
    if (d.dtype == dtype) return d.name;
  }
  ZT_THROW("dtype ", dtype_name(dtype), " has no safetensors name");
}

DType safetensors_dtype(const std::string& name) {
  for (const DTypeName& d : kDTypeNames) {
    if (name == d.name) return d.dtype;
  }
  ZT_THROW("safetensors dtype \"", name, "\" is not one zt holds (F32, F16, BF16, F64, I64, I32, I8, U8, BOOL)");
}

SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& path) {
  ZT_CHECK(file.size() >= 8, "safetensors file '", path, "' is ", file.size(),
           " bytes, shorter than the 8-byte header length (truncated or not a safetensors file)");
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  ZT_CHECK(n <= kMaxHeaderBytes, "safetensors file '", path, "' declares a header of ", n,
           " bytes (limit ", kMaxHeaderBytes, "): corrupt, or not a safetensors file");
  ZT_CHECK(n <= file.size() - 8, "safetensors file '", path, "' declares a ", n, "-byte header but has only ",
           file.size() - 8, " bytes after the length (truncated?)");

  const std::string_view text = file.substr(8, n);
  // The reference implementation insists on an object; checking the first byte also gives a
  // clearer message than the JSON parser's for a file that is something else entirely.
  ZT_CHECK(!text.empty() && text.front() == '{', "safetensors file '", path,
           "': the header does not start with '{' (not a safetensors file?)");
  nlohmann::ordered_json root;
  try {
    root = nlohmann::ordered_json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    ZT_THROW("safetensors file '", path, "': the ", n, "-byte header is not valid JSON: ", e.what());
  }
  ZT_CHECK(root.is_object(), "safetensors file '", path, "': the header is a JSON ", json_type(root),
           ", expected an object");

  SafetensorsHeader header;
  header.data_offset = 8 + n;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      ZT_CHECK(it->is_object(), "safetensors file '", path, "': __metadata__ is a JSON ", json_type(*it),
               ", expected an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        ZT_CHECK(m->is_string(), "safetensors file '", path, "': __metadata__ key \"", m.key(), "\" is ",
                 m->dump(), "; metadata values must be strings");
        header.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_entry(it.key(), *it, path));
  }

  // The ranges must tile the data section: sorted by begin, each starts where the previous
  // ended and the last ends at the end of the file. Gaps would be bytes nobody owns; overlaps
  // would alias two tensors.
  std::stable_sort(header.tensors.begin(), header.tensors.end(),
                   [](const TensorInfo& a, const TensorInfo& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  const uint64_t data_size = file.size() - header.data_offset;
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : header.tensors) {
    ZT_CHECK(t.end <= data_size, "safetensors file '", path, "': tensor '", t.name, "' has data_offsets [",
             t.begin, ", ", t.end, "] past the ", data_size, "-byte data section (truncated file?)");
    ZT_CHECK(t.begin >= cursor, "safetensors file '", path, "': tensor '", t.name, "' at [", t.begin, ", ",
             t.end, ") overlaps tensor '", previous ? previous->name : "", "' which ends at ", cursor);
    ZT_CHECK(t.begin == cursor, "safetensors file '", path, "': ", t.begin - cursor,
             " unowned bytes in the data section before tensor '", t.name, "' at ", t.begin);
    cursor = t.end;
    previous = &t;
  }
  ZT_CHECK(cursor == data_size, "safetensors file '", path, "': the tensors end at byte ", cursor,
           " of the data section but it holds ", data_size, " bytes (", data_size - cursor,
           " trailing bytes)");
  return header;
}

}  // namespace zt::io
