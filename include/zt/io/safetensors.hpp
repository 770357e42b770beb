// Safetensors files: Hugging Face's checkpoint format.
//
// Layout: an 8-byte little-endian header length N, then N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string>", ...}}
// (possibly padded with spaces), then the data section: every tensor's raw little-endian
// bytes at [begin, end) relative to the data section's start, row-major.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zt/core/dtype.hpp"
#include "zt/core/tensor.hpp"

namespace zt::io {

class MappedFile;
class AtomicFile;

struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

// The header of a safetensors file, validated against the file's size: every entry has the
// three keys with the right types, a known dtype, end - begin == numel * dtype size, and the
// ranges cover the data section exactly, without overlap or gaps (the rules of the reference
// Rust implementation). tensors are sorted by begin (file order).
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_offset = 0;                     // 8 + N: where the data section starts in the file
};

// Parses and validates the header of the file whose bytes are `file` (all of them: the
// offsets are checked against its length). path names the file in error messages.
SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& path);

// Safetensors' dtype names: "F32", "BF16", "BOOL", ...
std::string safetensors_dtype_name(DType dtype);
// The DType of a safetensors dtype name; zt::Error for names zt does not hold (e.g. "F8_E4M3").
DType safetensors_dtype(const std::string& name);

// What a writer needs of a tensor before its bytes: the header, written first, holds every
// tensor's dtype, shape and place.
struct TensorSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
};

// transformers refuses to load a safetensors checkpoint whose metadata lacks "format".
inline const std::map<std::string, std::string>& default_safetensors_metadata() {
  static const std::map<std::string, std::string> m{{"format", "pt"}};
  return m;
}

// Where each tensor goes in a new file, and its header bytes, exactly as the reference
// implementation writes them: tensors sorted by descending dtype (F64/I64, F32/I32, BF16/F16,
// I8/U8/BOOL, so that every tensor starts aligned to its element size) then by name; the
// compact JSON with "__metadata__" first (its keys sorted), padded with spaces to a multiple
// of 8 bytes so that the data section starts 8-byte aligned.
struct SafetensorsLayout {
  std::string header;               // the JSON and its padding (N bytes, N % 8 == 0)
  std::vector<TensorInfo> tensors;  // in data order
  uint64_t data_size = 0;
  uint64_t file_size() const { return 8 + header.size() + data_size; }
};
SafetensorsLayout safetensors_layout(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata);

// Writes one safetensors file atomically (a temporary file, fsync, rename). The header goes
// out first; tensors may then be written in any order (each at its own offset), so a caller
// can stream them one at a time, e.g. as they are gathered from shards. finish() checks that
// every tensor was written and publishes the file; without finish() nothing appears.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, const std::vector<TensorSpec>& specs,
                    const std::map<std::string, std::string>& metadata = default_safetensors_metadata());
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // tensor must have the declared dtype and shape; a CUDA tensor is copied to the host first.
  void write(const std::string& name, const Tensor& tensor);
  void write_bytes(const std::string& name, std::string_view bytes);
  // Elements [element_offset, element_offset + part.numel()) of a declared 1-D-or-any tensor (flat
  // order), for tensors written piece by piece; the pieces must not overlap and must cover it.
  void write_range(const std::string& name, int64_t element_offset, const Tensor& part);
  void finish();
  const SafetensorsLayout& layout() const { return layout_; }

 private:
  std::string path_;
  SafetensorsLayout layout_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in layout_.tensors
  std::vector<uint64_t> written_;  // bytes of each tensor written
  std::unique_ptr<AtomicFile> file_;
};

// Writes tensors (host or CUDA) into one file at path, atomically.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = default_safetensors_metadata());

class SafetensorsReader {
 public:
  // Memory-maps the file, parses and validates the header. Tensors are copied out on read.
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(SafetensorsReader&&) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept;

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }  // in file order
  std::vector<std::string> names() const;                                     // in file order
  bool contains(const std::string& name) const;
  // zt::Error naming the file, the missing tensor and the nearest name present.
  const TensorInfo& info(const std::string& name) const;
  Tensor read(const std::string& name) const;                  // a host copy, dtype as stored
  Tensor read_as(const std::string& name, DType dtype) const;  // a host copy, converted
  // The stored bytes of a tensor, inside the mapping (valid while the reader lives).
  std::string_view bytes(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const;

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in header_.tensors
};

}  // namespace zt::io
