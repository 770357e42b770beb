// Asynchronous file I/O for large buffers (the NVMe swapper's reads and writes), over io_uring
// (liburing) with DeepSpeed's "aio" settings: a read or write is split into block_size requests,
// up to queue_depth of them in flight on each of thread_count worker threads (each its own ring),
// so that the caller computes while the transfer runs and waits only for the request it needs.
//
//   AsyncIO io(options);
//   AsyncFile f(io, "/nvme/zt/master.swp", AsyncFile::Mode::create);
//   Request w = f.write(buffer, bytes, 0);   // returns at once
//   ...                                       // compute
//   w.wait();                                 // a zt::Error naming the file, the offset and errno
//
// O_DIRECT (no page cache: the NVMe's bandwidth, not the kernel's copies) is used where the file
// system allows it, for the part of a request whose buffer, offset and length are multiples of
// kDirectAlignment; an unaligned tail or buffer goes through the page cache. Where O_DIRECT is
// refused (some file systems, e.g. tmpfs before Linux 6.6) the file is read and written buffered,
// with one warning naming the path. Where io_uring itself is refused (a sandbox), the workers
// fall back to pread/pwrite, with one warning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zt::io {

// DeepSpeed's "aio" section (deepspeed/runtime/swap_tensor/constants.py), with its defaults.
struct AioOptions {
  int64_t block_size = 1048576;  // bytes per request (O_DIRECT requests: rounded down to a multiple of 4096)
  int64_t queue_depth = 8;       // requests in flight per worker thread
  int64_t thread_count = 1;      // worker threads, each with its own ring; a request's blocks are dealt out among them
  bool single_submit = false;    // true: submit each request by itself; false: all that fit, with one system call
  bool overlap_events = true;    // true: refill the queue as requests complete; false: a batch at a time, all of it awaited
  bool direct = true;            // O_DIRECT where the file system allows it
  bool use_io_uring = true;      // false: the workers run pread/pwrite (as where the kernel refuses io_uring)
};

// Buffers, file offsets and lengths that O_DIRECT takes (the largest logical block size in use).
constexpr size_t kDirectAlignment = 4096;

namespace detail {
struct Operation;
class Engine;
}  // namespace detail

// The worker threads and their rings. Outlives every file and request it serves; its destructor
// waits for requests in flight.
class AsyncIO {
 public:
  explicit AsyncIO(const AioOptions& options = {});
  ~AsyncIO();
  AsyncIO(const AsyncIO&) = delete;
  AsyncIO& operator=(const AsyncIO&) = delete;
  const AioOptions& options() const;
  bool uses_io_uring() const;  // false when the kernel refused io_uring (pread/pwrite workers)

 private:
  friend class AsyncFile;
  std::unique_ptr<detail::Engine> engine_;
};

// One read or write in flight. Copies share it; wait() may be called more than once.
class Request {
 public:
  Request() = default;  // an empty request: done
  bool done() const;    // never blocks
  void wait() const;    // blocks until every block of it finished; throws its first error
  size_t bytes() const;

 private:
  friend class AsyncFile;
  explicit Request(std::shared_ptr<detail::Operation> op) : op_(std::move(op)) {}
  std::shared_ptr<detail::Operation> op_;
};

class AsyncFile {
 public:
  enum class Mode {
    read,    // an existing file
    create,  // created or truncated, read and write
    update,  // created if missing (not truncated), read and write
  };
  // A zt::Error naming the path and errno when it cannot be opened.
  AsyncFile(AsyncIO& io, const std::string& path, Mode mode);
  ~AsyncFile();  // waits for its requests in flight
  AsyncFile(const AsyncFile&) = delete;
  AsyncFile& operator=(const AsyncFile&) = delete;

  // n bytes at byte offset `offset` into / from buffer, which must stay valid (and, for a write,
  // unchanged) until the request is done. A read past the end of the file is an error.
  Request read(void* buffer, size_t n, uint64_t offset);
  Request write(const void* buffer, size_t n, uint64_t offset);
  // Both, waited for.
  void read_all(void* buffer, size_t n, uint64_t offset) { read(buffer, n, offset).wait(); }
  void write_all(const void* buffer, size_t n, uint64_t offset) { write(buffer, n, offset).wait(); }

  const std::string& path() const { return path_; }
  bool direct() const { return direct_fd_ >= 0; }  // O_DIRECT in use for aligned requests
  uint64_t size() const;                           // the file's length now

 private:
  Request submit(bool write, void* buffer, size_t n, uint64_t offset);
  detail::Engine& engine_;
  std::string path_;
  int fd_ = -1, direct_fd_ = -1;
  std::vector<std::weak_ptr<detail::Operation>> in_flight_;  // this file's requests (the destructor waits)
};

}  // namespace zt::io
