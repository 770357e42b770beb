// A read-only memory map of a whole file. Readers of safetensors files and token shards look
// into the mapping instead of reading the file into memory, so opening a 100 GB checkpoint
// costs only its header until tensors are touched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace zt::io {

class MappedFile {
 public:
  // Maps path read-only; zt::Error naming the path and the system's reason when it cannot.
  // An empty file maps to size() == 0 and data() == nullptr.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data_), size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zt::io
