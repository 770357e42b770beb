#include "zt/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "zt/core/error.hpp"

namespace zt::io {
namespace {

std::string folder_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  // The temporary lives next to the target so that rename() stays within one filesystem;
  // pid and a counter keep concurrent writers (threads, ranks) from sharing it.
  static std::atomic<uint64_t> counter{0};
  temp_path_ = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  ZT_CHECK(fd_ >= 0, "cannot create '", temp_path_, "' to write '", path, "': ", std::strerror(errno),
           " (does the folder '", folder_of(path), "' exist and is it writable?)");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t n) {
  ZT_CHECK(fd_ >= 0, "write to '", path_, "' after commit");
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    // pwrite may write less than asked (signals, large requests); loop until all is out.
    const size_t chunk = std::min<size_t>(n - done, size_t(1) << 30);
    const ssize_t w = ::pwrite(fd_, p + done, chunk, off_t(offset + done));
    if (w < 0 && errno == EINTR) continue;
    ZT_CHECK(w > 0, "cannot write ", n, " bytes at offset ", offset, " of '", temp_path_, "': ",
             w < 0 ? std::strerror(errno) : "no progress", " (disk full?)");
    done += size_t(w);
  }
  size_ = std::max<uint64_t>(size_, offset + n);
}

void AtomicFile::append(const void* data, size_t n) { write_at(size_, data, n); }

void AtomicFile::commit() {
  ZT_CHECK(fd_ >= 0, "'", path_, "' committed twice");
  ZT_CHECK(::fsync(fd_) == 0, "cannot flush '", temp_path_, "' to disk: ", std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  ZT_CHECK(rc == 0, "cannot close '", temp_path_, "': ", std::strerror(errno));
  ZT_CHECK(::rename(temp_path_.c_str(), path_.c_str()) == 0, "cannot rename '", temp_path_, "' to '", path_,
           "': ", std::strerror(errno));
  committed_ = true;
  // The rename is durable only once the folder's entry is on disk too.
  const int dir = ::open(folder_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace zt::io
