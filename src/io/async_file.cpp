// AsyncIO: worker threads, each with an io_uring ring of queue_depth entries, that take the blocks
// of submitted reads and writes from a queue, keep up to queue_depth of them in flight, resubmit
// the rest of a short transfer, and count each operation down to done. Without io_uring (refused by
// the kernel) the same workers run pread/pwrite.
#include "zt/io/async_file.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "zt/core/error.hpp"
#include "zt/core/log.hpp"

namespace zt::io {

namespace detail {

struct Operation {
  std::string path;
  bool write = false;
  uint64_t offset = 0;  // of the whole request
  size_t bytes = 0;
  std::mutex mutex;
  std::condition_variable finished;
  int64_t pending = 0;  // blocks not done yet
  std::string error;    // the first block's failure

  void block_done(const std::string& failure) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!failure.empty() && error.empty()) error = failure;
    if (--pending == 0) finished.notify_all();
  }
};

struct Block {
  std::shared_ptr<Operation> op;
  int fd = -1;
  int buffered_fd = -1;  // where a block goes when the kernel refuses it with O_DIRECT
  char* buffer = nullptr;
  size_t n = 0;
  uint64_t offset = 0;
};

std::string failure_of(const Block& b, const std::string& reason) {
  return str(b.op->write ? "writing " : "reading ", b.op->path, " at offset ", b.offset, " (", b.n, " bytes): ", reason);
}

// err: an errno, or 0 for a read that found the end of the file.
std::string failure_of(const Block& b, int err) {
  return failure_of(b, err ? str(std::strerror(err), " (errno ", err, ")") : std::string("the file ends before it"));
}

class Worker {
 public:
  Worker(const AioOptions& options, bool& uring_ok, std::string& uring_error) : options_(options) {
    const int e = options.use_io_uring ? io_uring_queue_init(unsigned(std::max<int64_t>(1, options.queue_depth)), &ring_, 0) : -1;
    uring_ = e == 0;
    if (!uring_) {
      uring_ok = false;
      if (options.use_io_uring) uring_error = std::strerror(-e);
    }
    thread_ = std::thread([this] { uring_ ? run_uring() : run_blocking(); });
  }

  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    if (uring_) io_uring_queue_exit(&ring_);
  }

  void push(std::vector<Block> blocks) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (Block& b : blocks) queue_.push_back(std::move(b));
    }
    wake_.notify_one();
  }

 private:
  // Takes up to `most` blocks, waiting for work when none is in flight; false when stopping.
  bool take(size_t most, int64_t in_flight, std::vector<Block>& out) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (in_flight == 0) wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_ && queue_.empty() && in_flight == 0) return false;
    while (most-- > 0 && !queue_.empty()) {
      out.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return true;
  }

  void prepare(Block* b) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {  // not expected (at most queue_depth in flight): make room by submitting what is queued
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (!sqe) {  // still none: this block synchronously
      bool more = true;
      while (more) more = complete(b, transfer_now(*b));
      delete b;
      --in_flight_;
      return;
    }
    flying_.push_back(b);
    if (b->op->write) io_uring_prep_write(sqe, b->fd, b->buffer, unsigned(b->n), b->offset);
    else io_uring_prep_read(sqe, b->fd, b->buffer, unsigned(b->n), b->offset);
    io_uring_sqe_set_data(sqe, b);
    if (options_.single_submit) io_uring_submit(&ring_);
  }

  // A completion: done, failed, or the rest of a short transfer (true: resubmitted).
  bool complete(Block* b, int res) {
    if (res == -EINTR || res == -EAGAIN) return true;
    if (res == -EINVAL && b->fd != b->buffered_fd && b->buffered_fd >= 0) {
      warn_direct_refused(b->op->path);
      b->fd = b->buffered_fd;
      return true;
    }
    if (res < 0 || (res == 0 && b->n > 0)) {
      b->op->block_done(failure_of(*b, res < 0 ? -res : 0));
      return false;
    }
    if (size_t(res) < b->n) {
      b->buffer += res;
      b->offset += uint64_t(res);
      b->n -= size_t(res);
      return true;
    }
    b->op->block_done("");
    return false;
  }

  static int transfer_now(const Block& b) {
    const ssize_t res = b.op->write ? ::pwrite(b.fd, b.buffer, b.n, off_t(b.offset))
                                    : ::pread(b.fd, b.buffer, b.n, off_t(b.offset));
    return res < 0 ? -errno : int(res);
  }

  void run_uring() {
    const size_t depth = size_t(std::max<int64_t>(1, options_.queue_depth));
    std::vector<Block> taken;
    for (;;) {
      taken.clear();
      // overlap_events: refill the free entries now; otherwise a new batch only once the last is done.
      const size_t room = options_.overlap_events ? depth - size_t(in_flight_) : (in_flight_ == 0 ? depth : 0);
      if (!take(room, in_flight_, taken)) return;
      in_flight_ += int64_t(taken.size());
      for (Block& b : taken) prepare(new Block(std::move(b)));
      if (!options_.single_submit && !taken.empty()) io_uring_submit(&ring_);
      if (in_flight_ == 0) continue;
      io_uring_cqe* cqe = nullptr;
      const int e = io_uring_wait_cqe(&ring_, &cqe);
      if (e == -EINTR) continue;
      if (e != 0) return abandon_ring(e);
      std::vector<Block*> again;
      do {
        Block* b = static_cast<Block*>(io_uring_cqe_get_data(cqe));
        const int res = cqe->res;
        io_uring_cqe_seen(&ring_, cqe);
        flying_.erase(std::find(flying_.begin(), flying_.end(), b));
        if (complete(b, res)) {
          again.push_back(b);
        } else {
          delete b;
          --in_flight_;
        }
      } while (io_uring_peek_cqe(&ring_, &cqe) == 0);
      for (Block* b : again) prepare(b);
      if (!options_.single_submit && !again.empty()) io_uring_submit(&ring_);
    }
  }

  // The ring failed (not seen in practice): the blocks in it fail, and the worker goes on with
  // pread/pwrite (a worker thread must not throw).
  void abandon_ring(int err) {
    const std::string why = str("io_uring_wait_cqe failed: ", std::strerror(-err));
    io_uring_queue_exit(&ring_);  // cancels what is in flight
    uring_ = false;
    for (Block* b : flying_) {
      b->op->block_done(failure_of(*b, why));
      delete b;
    }
    flying_.clear();
    in_flight_ = 0;
    run_blocking();
  }

  void run_blocking() {
    std::vector<Block> taken;
    for (;;) {
      taken.clear();
      if (!take(1, 0, taken)) return;
      for (Block& b : taken) {
        bool more = true;
        while (more) more = complete(&b, transfer_now(b));
      }
    }
  }

  static void warn_direct_refused(const std::string& path) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      log_warn("O_DIRECT I/O is refused for ", path, " (Invalid argument); reading and writing it through the page cache");
  }

  AioOptions options_;
  io_uring ring_{};
  bool uring_ = false;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Block> queue_;
  bool stop_ = false;
  int64_t in_flight_ = 0;         // blocks in the ring (the worker thread's own)
  std::vector<Block*> flying_;    // the same blocks
};

class Engine {
 public:
  explicit Engine(const AioOptions& options) : options_(options) {
    ZT_CHECK(options.block_size > 0, "aio.block_size must be positive, got ", options.block_size);
    ZT_CHECK(options.queue_depth > 0 && options.queue_depth <= 4096, "aio.queue_depth must be in [1, 4096], got ",
             options.queue_depth);
    ZT_CHECK(options.thread_count > 0 && options.thread_count <= 256, "aio.thread_count must be in [1, 256], got ",
             options.thread_count);
    std::string why;
    for (int64_t i = 0; i < options.thread_count; ++i) workers_.push_back(std::make_unique<Worker>(options, uring_, why));
    if (!uring_ && options.use_io_uring)
      log_warn("io_uring is refused here (", why, "); NVMe I/O runs as pread/pwrite on ", options.thread_count,
               " thread(s)");
  }

  // Deals the blocks of [buffer, buffer + n) out to the workers, round robin. Blocks on a file
  // opened with O_DIRECT are multiples of the alignment.
  void submit(const std::shared_ptr<Operation>& op, int fd, int buffered_fd, char* buffer, size_t n, uint64_t offset,
              bool direct) {
    const size_t block = block_for(direct);
    std::vector<std::vector<Block>> dealt(workers_.size());
    for (size_t at = 0, i = 0; at < n; at += block, ++i)
      dealt[(next_ + i) % workers_.size()].push_back({op, fd, buffered_fd, buffer + at, std::min(block, n - at), offset + at});
    next_ = (next_ + 1) % workers_.size();
    for (size_t w = 0; w < workers_.size(); ++w)
      if (!dealt[w].empty()) workers_[w]->push(std::move(dealt[w]));
  }

  static int64_t blocks_of(size_t n, size_t block) { return int64_t((n + block - 1) / block); }
  size_t block_for(bool direct) const {
    size_t block = std::min(size_t(options_.block_size), size_t(1) << 30);  // a ring entry's length is 32-bit
    return direct ? std::max(kDirectAlignment, block / kDirectAlignment * kDirectAlignment) : block;
  }

  const AioOptions& options() const { return options_; }
  bool uring() const { return uring_; }

  void warn_direct_refused_once(const std::string& path, int err) {
    if (!warned_direct_.exchange(true))
      log_warn("O_DIRECT is refused for ", path, " (", std::strerror(err),
               "; the file system may not support it, as tmpfs before Linux 6.6); its reads and writes go through "
               "the page cache");
  }

 private:
  AioOptions options_;
  bool uring_ = true;
  std::vector<std::unique_ptr<Worker>> workers_;
  size_t next_ = 0;
  std::atomic<bool> warned_direct_{false};
};

}  // namespace detail

AsyncIO::AsyncIO(const AioOptions& options) : engine_(std::make_unique<detail::Engine>(options)) {}
AsyncIO::~AsyncIO() = default;
const AioOptions& AsyncIO::options() const { return engine_->options(); }
bool AsyncIO::uses_io_uring() const { return engine_->uring(); }

bool Request::done() const {
  if (!op_) return true;
  std::lock_guard<std::mutex> lock(op_->mutex);
  return op_->pending == 0;
}

void Request::wait() const {
  if (!op_) return;
  std::unique_lock<std::mutex> lock(op_->mutex);
  op_->finished.wait(lock, [&] { return op_->pending == 0; });
  if (!op_->error.empty()) ZT_THROW(op_->error);
}

size_t Request::bytes() const { return op_ ? op_->bytes : 0; }

AsyncFile::AsyncFile(AsyncIO& io, const std::string& path, Mode mode) : engine_(*io.engine_), path_(path) {
  const int access = mode == Mode::read ? O_RDONLY : O_RDWR;
  const int create = mode == Mode::create ? O_CREAT | O_TRUNC : (mode == Mode::update ? O_CREAT : 0);
  fd_ = ::open(path.c_str(), access | create | O_CLOEXEC, 0644);
  ZT_CHECK(fd_ >= 0, "cannot open ", path, mode == Mode::read ? " for reading: " : " for writing: ", std::strerror(errno),
           " (errno ", errno, ")");
  if (!engine_.options().direct) return;
  direct_fd_ = ::open(path.c_str(), access | O_DIRECT | O_CLOEXEC);
  if (direct_fd_ < 0) engine_.warn_direct_refused_once(path, errno);
}

AsyncFile::~AsyncFile() {
  for (const auto& weak : in_flight_) {
    if (auto op = weak.lock()) {
      std::unique_lock<std::mutex> lock(op->mutex);
      op->finished.wait(lock, [&] { return op->pending == 0; });
    }
  }
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (fd_ >= 0) ::close(fd_);
}

Request AsyncFile::read(void* buffer, size_t n, uint64_t offset) { return submit(false, buffer, n, offset); }

Request AsyncFile::write(const void* buffer, size_t n, uint64_t offset) {
  return submit(true, const_cast<void*>(buffer), n, offset);  // a write only reads the buffer
}

Request AsyncFile::submit(bool write, void* buffer, size_t n, uint64_t offset) {
  auto op = std::make_shared<detail::Operation>();
  op->path = path_;
  op->write = write;
  op->offset = offset;
  op->bytes = n;
  char* bytes = static_cast<char*>(buffer);
  // The aligned head through O_DIRECT, the rest (or all of an unaligned request) buffered.
  const bool aligned = direct_fd_ >= 0 && reinterpret_cast<uintptr_t>(buffer) % kDirectAlignment == 0 &&
                       offset % kDirectAlignment == 0;
  const size_t head = aligned ? n / kDirectAlignment * kDirectAlignment : 0;
  op->pending = detail::Engine::blocks_of(head, engine_.block_for(true)) +
                detail::Engine::blocks_of(n - head, engine_.block_for(false));
  in_flight_.erase(std::remove_if(in_flight_.begin(), in_flight_.end(), [](const auto& w) { return w.expired(); }),
                   in_flight_.end());
  in_flight_.push_back(op);
  if (head > 0) engine_.submit(op, direct_fd_, fd_, bytes, head, offset, true);
  if (n > head) engine_.submit(op, fd_, fd_, bytes + head, n - head, offset + head, false);
  return Request(op);
}

uint64_t AsyncFile::size() const {
  struct stat st {};
  ZT_CHECK(::fstat(fd_, &st) == 0, "cannot stat ", path_, ": ", std::strerror(errno));
  return uint64_t(st.st_size);
}

}  // namespace zt::io
