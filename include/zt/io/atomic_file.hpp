// A file that appears at its path complete or not at all. Bytes go to a temporary file in
// the same folder; commit() flushes them to disk (fsync), renames the temporary over the
// path and syncs the folder, so a crash mid-save leaves the previous file intact and never
// a truncated one that a later load would trip over.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zt::io {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  // removes the temporary file unless commit() ran
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Writes n bytes at offset (any order; a gap reads back as zeros).
  void write_at(uint64_t offset, const void* data, size_t n);
  // Writes n bytes after the furthest byte written so far.
  void append(const void* data, size_t n);
  uint64_t size() const { return size_; }

  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool committed_ = false;
};

}  // namespace zt::io
