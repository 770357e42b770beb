#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "io/near_name.hpp"
#include "zt/core/error.hpp"
#include "zt/io/atomic_file.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::io {
namespace {

// The reference implementation's dtype order (BOOL < U8 < I8 < ... < F16 < BF16 < I32 < U32 <
// F32 < F64 < I64 < U64); files sort tensors by it, descending.
int dtype_rank(DType d) {
  switch (d) {
    case DType::b8: return 0;
    case DType::u8: return 1;
    case DType::i8: return 2;
    case DType::f16: return 7;
    case DType::bf16: return 8;
    case DType::i32: return 9;
    case DType::f32: return 11;
    case DType::f64: return 12;
    case DType::i64: return 13;
  }
  return -1;
}

std::string json_string(const std::string& s) { return nlohmann::json(s).dump(); }

}  // namespace

SafetensorsLayout safetensors_layout(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata) {
  std::unordered_set<std::string> seen;
  for (const TensorSpec& s : specs) {
    ZT_CHECK(s.name != "__metadata__", "a tensor cannot be named __metadata__ in a safetensors file");
    ZT_CHECK(seen.insert(s.name).second, "tensor '", s.name, "' is given twice for one safetensors file");
    for (int64_t d : s.shape) ZT_CHECK(d >= 0, "tensor '", s.name, "' has a negative dimension in ", shape_str(s.shape));
    (void)safetensors_dtype_name(s.dtype);  // throws for a dtype safetensors cannot name
  }
  std::vector<const TensorSpec*> order;
  order.reserve(specs.size());
  for (const TensorSpec& s : specs) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const TensorSpec* a, const TensorSpec* b) {
    const int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
    return ra != rb ? ra > rb : a->name < b->name;
  });

  SafetensorsLayout layout;
  std::string& h = layout.header;
  h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) h += ",";
      first = false;
      h += json_string(key) + ":" + json_string(value);
    }
    h += "}";
  }
  uint64_t offset = 0;
  for (const TensorSpec* s : order) {
    TensorInfo info{s->name, s->dtype, s->shape, offset, offset + uint64_t(shape_numel(s->shape)) * dtype_size(s->dtype)};
    offset = info.end;
    if (h.size() > 1) h += ",";
    h += json_string(s->name) + ":{\"dtype\":\"" + safetensors_dtype_name(s->dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < s->shape.size(); ++i) {
      if (i) h += ',';
      h += std::to_string(s->shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(info.begin) + "," + std::to_string(info.end) + "]}";
    layout.tensors.push_back(std::move(info));
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  layout.data_size = offset;
  return layout;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), layout_(safetensors_layout(specs, metadata)) {
  for (size_t i = 0; i < layout_.tensors.size(); ++i) index_.emplace(layout_.tensors[i].name, i);
  written_.assign(layout_.tensors.size(), 0);
  file_ = std::make_unique<AtomicFile>(path);
  const uint64_t n = layout_.header.size();
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(n >> (8 * i));  // little-endian, whatever the host
  file_->write_at(0, length, 8);
  file_->write_at(8, layout_.header.data(), layout_.header.size());
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write_bytes(const std::string& name, std::string_view bytes) {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    std::vector<std::string> names;
    for (const TensorInfo& t : layout_.tensors) names.push_back(t.name);
    ZT_THROW("safetensors file '", path_, "' was not declared with a tensor '", name, "'", did_you_mean(name, names));
  }
  ZT_CHECK(file_ != nullptr, "safetensors file '", path_, "': write of '", name, "' after finish()");
  const TensorInfo& t = layout_.tensors[it->second];
  ZT_CHECK(bytes.size() == t.end - t.begin, "safetensors file '", path_, "': tensor '", name, "' was declared as ",
           dtype_name(t.dtype), " ", shape_str(t.shape), " (", t.end - t.begin, " bytes) but ", bytes.size(),
           " bytes were given");
  file_->write_at(8 + layout_.header.size() + t.begin, bytes.data(), bytes.size());
  written_[it->second] = t.end - t.begin;
}

void SafetensorsWriter::write_range(const std::string& name, int64_t element_offset, const Tensor& part) {
  const auto it = index_.find(name);
  ZT_CHECK(it != index_.end(), "safetensors file '", path_, "' was not declared with a tensor '", name, "'");
  ZT_CHECK(file_ != nullptr, "safetensors file '", path_, "': write of '", name, "' after finish()");
  const TensorInfo& t = layout_.tensors[it->second];
  ZT_CHECK(part.defined() && part.dtype() == t.dtype, "safetensors file '", path_, "': a piece of '", name,
           "' must be ", dtype_name(t.dtype), ", got ", part.defined() ? part.describe() : std::string("none"));
  const uint64_t at = uint64_t(element_offset) * dtype_size(t.dtype), n = part.nbytes();
  ZT_CHECK(element_offset >= 0 && at + n <= t.end - t.begin, "safetensors file '", path_, "': elements [",
           element_offset, ", ", element_offset + part.numel(), ") lie outside tensor '", name, "' of ",
           shape_numel(t.shape), " elements");
  const Tensor host = part.device().is_cpu() ? part : part.to(Device::cpu());
  if (n > 0) file_->write_at(8 + layout_.header.size() + t.begin + at, static_cast<const char*>(host.raw()), n);
  written_[it->second] += n;
}

void SafetensorsWriter::write(const std::string& name, const Tensor& tensor) {
  const auto it = index_.find(name);
  if (it != index_.end()) {
    const TensorInfo& t = layout_.tensors[it->second];
    ZT_CHECK(tensor.defined(), "safetensors file '", path_, "': tensor '", name, "' is undefined");
    ZT_CHECK(tensor.dtype() == t.dtype && tensor.shape() == t.shape, "safetensors file '", path_, "': tensor '",
             name, "' was declared as ", dtype_name(t.dtype), " ", shape_str(t.shape), " but is ",
             tensor.describe());
  }
  const Tensor host = tensor.defined() && !tensor.device().is_cpu() ? tensor.to(Device::cpu()) : tensor;
  const char* data = host.defined() && host.numel() > 0 ? static_cast<const char*>(host.raw()) : "";
  write_bytes(name, std::string_view(data, host.defined() ? host.nbytes() : 0));
}

void SafetensorsWriter::finish() {
  ZT_CHECK(file_ != nullptr, "safetensors file '", path_, "' finished twice");
  for (size_t i = 0; i < written_.size(); ++i) {
    ZT_CHECK(written_[i] == layout_.tensors[i].end - layout_.tensors[i].begin, "safetensors file '", path_, "': tensor '", layout_.tensors[i].name,
             "' was declared but never written");
  }
  ZT_CHECK(file_->size() == layout_.file_size(), "safetensors file '", path_, "' would be ", file_->size(),
           " bytes, expected ", layout_.file_size());
  file_->commit();
  file_.reset();
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    ZT_CHECK(t.defined(), "cannot save tensor '", name, "' to '", path, "': it is undefined");
    specs.push_back({name, t.dtype(), t.shape()});
  }
  SafetensorsWriter writer(path, specs, metadata);
  for (const auto& [name, t] : tensors) writer.write(name, t);
  writer.finish();
}

}  // namespace zt::io
