// Work: the handle that every collective returns, so that the caller overlaps communication
// with compute and waits only when it needs the result (c10d's Work).
//
// Invariants:
// - A collective's tensors are kept alive by the backend until the operation has finished,
//   whatever happens to the Work handle; the caller must not write an input or read an output
//   before wait() (or before is_completed() returned true).
// - wait() blocks (sleeping, never spinning) until the operation finishes, and throws zt::Error
//   when it failed or did not finish within the group's timeout; the message names the op, the
//   bytes and the group. After such a failure the group is unusable: later calls fail at once.
#pragma once

#include <memory>
#include <vector>

namespace zt::comm {

// What a backend implements for one operation.
class WorkImpl {
 public:
  virtual ~WorkImpl() = default;
  // True once the operation finished, successfully or not; never blocks, never throws.
  virtual bool is_completed() = 0;
  // Blocks until the operation finished; throws zt::Error on failure or timeout.
  virtual void wait() = 0;
  // Makes a CUDA stream (cudaStream_t passed as void*) wait for the operation without blocking
  // the host. Host-side operations simply wait().
  virtual void synchronize_stream(void* cuda_stream) { wait(); }
};

class Work {
 public:
  Work() = default;  // an empty handle: already complete
  explicit Work(std::shared_ptr<WorkImpl> impl) : impl_(std::move(impl)) {}

  bool is_completed() const { return !impl_ || impl_->is_completed(); }
  void wait() const {
    if (impl_) impl_->wait();
  }
  void synchronize_stream(void* cuda_stream) const {
    if (impl_) impl_->synchronize_stream(cuda_stream);
  }

 private:
  std::shared_ptr<WorkImpl> impl_;
};

// Waits for every handle in order; the first failure is thrown after all were waited for.
void wait_all(const std::vector<Work>& works);

}  // namespace zt::comm
