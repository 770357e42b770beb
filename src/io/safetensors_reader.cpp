#include <cstring>

#include "io/near_name.hpp"
#include "zt/core/error.hpp"
#include "zt/io/mapped_file.hpp"
#include "zt/io/safetensors.hpp"

namespace zt::io {

SafetensorsReader::SafetensorsReader(const std::string& path)
    : path_(path), file_(std::make_unique<MappedFile>(path)) {
  header_ = parse_safetensors_header(file_->bytes(), path_);
  index_.reserve(header_.tensors.size());
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

SafetensorsReader::~SafetensorsReader() = default;
SafetensorsReader::SafetensorsReader(SafetensorsReader&&) noexcept = default;
SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&&) noexcept = default;

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const TensorInfo& t : header_.tensors) out.push_back(t.name);
  return out;
}

bool SafetensorsReader::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    ZT_THROW("safetensors file '", path_, "' has no tensor '", name, "'", did_you_mean(name, names()), " (it holds ",
             header_.tensors.size(), " tensors)");
  }
  return header_.tensors[it->second];
}

std::string_view SafetensorsReader::bytes(const std::string& name) const {
  const TensorInfo& t = info(name);
  return file_->bytes().substr(header_.data_offset + t.begin, t.end - t.begin);
}

Tensor SafetensorsReader::read(const std::string& name) const {
  const TensorInfo& t = info(name);
  Tensor out = Tensor::empty(t.shape, t.dtype);
  const std::string_view src = bytes(name);
  if (!src.empty()) std::memcpy(out.raw(), src.data(), src.size());
  return out;
}

Tensor SafetensorsReader::read_as(const std::string& name, DType dtype) const {
  Tensor t = read(name);
  return t.dtype() == dtype ? t : t.to(dtype);
}

uint64_t SafetensorsReader::file_size() const { return file_->size(); }

}  // namespace zt::io
