// The NCCL backend: CUDA tensors, each op enqueued on the communicator's own stream after an
// event recorded on the caller's stream, completion observed through an event. Work::wait()
// polls that event (sleeping between polls) up to the op's deadline, aborting the communicator
// on timeout, and then makes the caller's stream wait for the result.
#include "../nccl_backend.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <list>

#include "../../host_work.hpp"
#include "../../poll.hpp"
#include "nccl_check.hpp"
#include "nccl_comm.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"

namespace zt::comm {

namespace {

using Clock = NcclComm::Clock;

ncclDataType_t nccl_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    case DType::i8: return ncclInt8;
    case DType::u8: case DType::b8: return ncclUint8;
  }
  ZT_THROW("dtype ", dtype_name(dtype), " has no NCCL type");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  ZT_THROW("reduce op ", int(op), " has no NCCL op");
}

char* bytes_of(const Tensor& t) { return static_cast<char*>(t.raw()); }

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

class NcclWork : public WorkImpl {
 public:
  NcclWork(std::shared_ptr<NcclComm> comm, OpInfo info, std::vector<Tensor> keep, cudaStream_t caller)
      : comm_(std::move(comm)), info_(std::move(info)), keep_(std::move(keep)), caller_(caller),
        deadline_(deadline_after(info_.timeout_s)) {
    const unsigned flags = info_.profile ? cudaEventDefault : cudaEventDisableTiming;
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    ZT_CUDA_CHECK(cudaEventCreateWithFlags(&done_, flags));
    if (info_.profile) ZT_CUDA_CHECK(cudaEventCreateWithFlags(&start_, flags));
  }

  ~NcclWork() override {
    for (cudaEvent_t e : {ready_, start_, done_})
      if (e) cudaEventDestroy(e);
  }

  cudaEvent_t ready() const { return ready_; }
  cudaEvent_t start() const { return start_; }
  cudaEvent_t done() const { return done_; }

  bool is_completed() override { return poll() != State::pending; }

  void wait() override {
    PollBackoff backoff;
    while (poll() == State::pending) backoff.pause();
    throw_if_failed();
    // The host saw the op finish; the caller's stream must also be ordered after it.
    ZT_CUDA_CHECK(cudaStreamWaitEvent(caller_, done_, 0));
  }

  void synchronize_stream(void* cuda_stream) override {
    throw_if_failed();
    ZT_CUDA_CHECK(cudaStreamWaitEvent(cuda_stream ? static_cast<cudaStream_t>(cuda_stream) : caller_, done_, 0));
  }

 private:
  enum class State { pending, done, failed };

  State poll() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != State::pending) return state_;
    const cudaError_t q = cudaEventQuery(done_);
    if (q == cudaSuccess) {
      state_ = State::done;
      if (info_.profile) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, start_, done_) == cudaSuccess)
          comms_logger().record(info_.op, info_.bytes, double(ms) * 1e-3, info_.group_size, info_.what);
      }
      keep_.clear();
      return state_;
    }
    if (q != cudaErrorNotReady) {
      fail_locked(str(info_.what, ": CUDA error while waiting: ", cudaGetErrorString(q)));
      return state_;
    }
    const ncclResult_t s = comm_->async_state();
    if (s != ncclSuccess && s != ncclInProgress) {
      const std::string earlier = comm_->failure();
      fail_locked(str(info_.what, " failed in NCCL: ", earlier.empty() ? ncclGetErrorString(s) : earlier));
    } else if (Clock::now() > deadline_) {
      fail_locked(timeout_message(info_));
    }
    return state_;
  }

  void fail_locked(const std::string& message) {
    state_ = State::failed;
    error_ = message;
    comm_->fail(message);  // aborts: kernels waiting for a dead peer are freed
  }

  void throw_if_failed() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ == State::failed) ZT_THROW(error_);
  }

  std::shared_ptr<NcclComm> comm_;
  OpInfo info_;
  std::vector<Tensor> keep_;  // alive until the op finished
  cudaStream_t caller_;
  Clock::time_point deadline_;
  cudaEvent_t ready_ = nullptr, start_ = nullptr, done_ = nullptr;
  std::mutex mutex_;
  State state_ = State::pending;
  std::string error_;
};

class NcclBackend : public Backend {
 public:
  explicit NcclBackend(std::shared_ptr<NcclComm> comm) : comm_(std::move(comm)) {}

  std::string name() const override { return "nccl"; }
  int rank() const override { return comm_->rank(); }
  int size() const override { return comm_->size(); }

  Work all_reduce(const Tensor& t, ReduceOp op, const OpInfo& info) override {
    return enqueue(info, {t}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclAllReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_dtype(t.dtype()), nccl_op(op), c, s);
    });
  }

  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op, const OpInfo& info) override {
    return enqueue(info, {output, input}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclReduceScatter(input.raw(), output.raw(), size_t(output.numel()), nccl_dtype(input.dtype()),
                               nccl_op(op), c, s);
    });
  }

  Work reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts, ReduceOp op,
                        const OpInfo& info) override {
    // One reduce per rank, rooted there, in one group: NCCL has no reduce-scatter of uneven chunks.
    const std::vector<int64_t> offsets = chunk_offsets(counts);
    const size_t esize = dtype_size(input.dtype());
    return enqueue(info, {output, input}, [&](ncclComm_t c, cudaStream_t s) {
      ncclResult_t rc = ncclGroupStart();
      for (int r = 0; r < size() && ok(rc); ++r)
        rc = ncclReduce(bytes_of(input) + size_t(offsets[size_t(r)]) * esize, output.raw(), size_t(counts[size_t(r)]),
                        nccl_dtype(input.dtype()), nccl_op(op), r, c, s);
      const ncclResult_t end = ncclGroupEnd();
      return ok(rc) ? end : rc;
    });
  }

  Work all_gather(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    return enqueue(info, {output, input}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclAllGather(input.raw(), output.raw(), size_t(input.numel()), nccl_dtype(input.dtype()), c, s);
    });
  }

  Work all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                    const OpInfo& info) override {
    // One broadcast per rank, rooted there, in one group.
    const std::vector<int64_t> offsets = chunk_offsets(counts);
    const size_t esize = dtype_size(input.dtype());
    return enqueue(info, {output, input}, [&](ncclComm_t c, cudaStream_t s) {
      ncclResult_t rc = ncclGroupStart();
      for (int r = 0; r < size() && ok(rc); ++r) {
        char* dst = bytes_of(output) + size_t(offsets[size_t(r)]) * esize;
        rc = ncclBroadcast(r == rank() ? input.raw() : dst, dst, size_t(counts[size_t(r)]), nccl_dtype(input.dtype()), r,
                           c, s);
      }
      const ncclResult_t end = ncclGroupEnd();
      return ok(rc) ? end : rc;
    });
  }

  Work broadcast(const Tensor& t, int root, const OpInfo& info) override {
    return enqueue(info, {t}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclBroadcast(t.raw(), t.raw(), size_t(t.numel()), nccl_dtype(t.dtype()), root, c, s);
    });
  }

  Work reduce(const Tensor& t, int root, ReduceOp op, const OpInfo& info) override {
    return enqueue(info, {t}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclReduce(t.raw(), t.raw(), size_t(t.numel()), nccl_dtype(t.dtype()), nccl_op(op), root, c, s);
    });
  }

  Work all_to_all(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    const size_t chunk = size_t(input.numel() / size());
    const size_t chunk_bytes = chunk * dtype_size(input.dtype());
    return enqueue(info, {output, input}, [&](ncclComm_t c, cudaStream_t s) {
      ncclResult_t rc = ncclGroupStart();
      for (int r = 0; r < size() && ok(rc); ++r) {
        rc = ncclSend(bytes_of(input) + size_t(r) * chunk_bytes, chunk, nccl_dtype(input.dtype()), r, c, s);
        if (ok(rc)) rc = ncclRecv(bytes_of(output) + size_t(r) * chunk_bytes, chunk, nccl_dtype(input.dtype()), r, c, s);
      }
      const ncclResult_t end = ncclGroupEnd();
      return ok(rc) ? end : rc;
    });
  }

  Work send(const Tensor& t, int dst, int, const OpInfo& info) override {
    return enqueue(info, {t}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclSend(t.raw(), size_t(t.numel()), nccl_dtype(t.dtype()), dst, c, s);
    });
  }

  Work recv(const Tensor& t, int src, int, const OpInfo& info) override {
    return enqueue(info, {t}, [&](ncclComm_t c, cudaStream_t s) {
      return ncclRecv(t.raw(), size_t(t.numel()), nccl_dtype(t.dtype()), src, c, s);
    });
  }

  Work barrier(const OpInfo& info) override {
    // Process groups take barriers through their host backend; this one all-reduces a word.
    if (!scratch_.defined()) scratch_ = Tensor::zeros({1}, DType::f32, Device::cuda(comm_->device()));
    return all_reduce(scratch_, ReduceOp::sum, info);
  }

  std::shared_ptr<Backend> split(int, int, double) override {
    ZT_THROW("NCCL communicators are created per process group; split the group's host backend instead");
  }

  bool failed() const override { return comm_->failed(); }
  std::string failure() const override { return comm_->failure(); }

 private:
  static bool ok(ncclResult_t rc) { return rc == ncclSuccess || rc == ncclInProgress; }

  template <class F>
  Work enqueue(const OpInfo& info, std::vector<Tensor> keep, F&& launch) {
    if (comm_->failed())
      return failed_work(str(info.what, ": the NCCL communicator is unusable after an earlier failure: ", comm_->failure()));
    ZT_CUDA_CHECK(cudaSetDevice(comm_->device()));
    cudaStream_t caller = info.cuda_stream ? static_cast<cudaStream_t>(info.cuda_stream) : cuda::compute_stream();
    auto work = std::make_shared<NcclWork>(comm_, info, std::move(keep), caller);
    cudaStream_t stream = comm_->stream();
    // The comm stream waits for what the caller's stream did to the inputs so far.
    ZT_CUDA_CHECK(cudaEventRecord(work->ready(), caller));
    ZT_CUDA_CHECK(cudaStreamWaitEvent(stream, work->ready(), 0));
    if (info.profile) ZT_CUDA_CHECK(cudaEventRecord(work->start(), stream));
    comm_->call([&](ncclComm_t c) { return launch(c, stream); }, deadline_after(info.timeout_s), info.what);
    ZT_CUDA_CHECK(cudaEventRecord(work->done(), stream));
    // Works dropped unwaited stay here, holding their tensors, until they finish.
    pending_.remove_if([](const std::shared_ptr<NcclWork>& w) { return w->is_completed(); });
    pending_.push_back(work);
    return Work(work);
  }

  std::shared_ptr<NcclComm> comm_;
  std::list<std::shared_ptr<NcclWork>> pending_;
  Tensor scratch_;
};

}  // namespace

bool nccl_is_built() { return true; }

std::shared_ptr<Backend> make_nccl_backend(Backend& bootstrap, int rank, int size, int device, double timeout_s,
                                           const std::string& group) {
  const std::string what = str("creating the NCCL communicator of ", group, " on cuda:", device);
  ZT_CUDA_CHECK(cudaSetDevice(device));
  ncclUniqueId id;
  Tensor id_bytes = Tensor::zeros({int64_t(sizeof id)}, DType::u8);
  if (rank == 0) {
    ZT_NCCL_CHECK(ncclGetUniqueId(&id), what);
    std::memcpy(id_bytes.raw(), &id, sizeof id);
  }
  OpInfo info;
  info.op = "broadcast";
  info.bytes = sizeof id;
  info.what = str("broadcast of the NCCL unique id on ", group);
  info.group_size = size;
  info.timeout_s = timeout_s;
  bootstrap.broadcast(id_bytes, 0, info).wait();
  std::memcpy(&id, id_bytes.raw(), sizeof id);
  auto comm = std::make_shared<NcclComm>(id, rank, size, device, deadline_after(timeout_s), what);
  return std::make_shared<NcclBackend>(std::move(comm));
}

}  // namespace zt::comm
