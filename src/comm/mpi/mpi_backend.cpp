#include "mpi_backend.hpp"

#include <climits>
#include <cstring>

#include "mpi_check.hpp"
#include "mpi_runtime.hpp"
#include "mpi_types.hpp"
#include "zt/core/error.hpp"

namespace zt::comm {

namespace {

using Requests = std::vector<MPI_Request>;

char* bytes_of(const Tensor& t) { return static_cast<char*>(t.raw()); }

bool overlaps(const Tensor& a, const Tensor& b) {
  const char* a0 = bytes_of(a);
  const char* b0 = bytes_of(b);
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// Per-rank counts of the chunked collectives must fit MPI's int.
int checked_count(int64_t count, const OpInfo& info) {
  ZT_CHECK(count <= INT_MAX, info.what, ": ", count, " elements per rank exceed MPI's int count limit (", INT_MAX,
           "); split the tensor or use NCCL");
  return int(count);
}

std::vector<int> checked_counts(const std::vector<int64_t>& counts, const OpInfo& info) {
  std::vector<int> out;
  int64_t total = 0;
  for (int64_t c : counts) {
    out.push_back(checked_count(c, info));
    total += c;
  }
  checked_count(total, info);  // the displacements are ints too
  return out;
}

std::vector<int> int_offsets(const std::vector<int>& counts) {
  std::vector<int> offsets(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) offsets[i] = offsets[i - 1] + counts[i - 1];
  return offsets;
}

// Calls post(offset, count) for chunks of at most mpi_max_chunk() elements (one empty chunk for n == 0,
// so that every rank posts the same calls).
template <class F>
void for_each_chunk(size_t n, F&& post) {
  const size_t chunk = mpi_max_chunk();
  size_t offset = 0;
  do {
    const size_t count = std::min(n - offset, chunk);
    post(offset, int(count));
    offset += count;
  } while (offset < n);
}

class MpiBackend : public Backend {
 public:
  MpiBackend(std::shared_ptr<MpiRuntime> runtime, MPI_Comm comm, int rank, int size)
      : runtime_(std::move(runtime)), comm_(comm), rank_(rank), size_(size) {}

  ~MpiBackend() override {
    if (comm_ == MPI_COMM_WORLD || runtime_->broken()) return;
    // Freeing is local in practice; queued so that it happens on the progress thread.
    auto op = std::make_shared<MpiOp>();
    OpInfo info;
    info.op = "comm_free";
    info.what = "freeing an MPI communicator";
    op->work = runtime_->make_work(info);
    MPI_Comm comm = comm_;
    op->start = [comm](Requests&) mutable { MPI_Comm_free(&comm); };
    runtime_->submit(op);
  }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Work all_reduce(const Tensor& t, ReduceOp op, const OpInfo& info) override {
    const size_t n = size_t(t.numel());
    const DType dtype = t.dtype();
    const MPI_Op mop = mpi_reduce_op(op);
    const int group = size_;
    if (needs_f32_staging(dtype)) {
      auto staged = std::make_shared<std::unique_ptr<float[]>>();
      return submit(info, {t},
          [=, comm = comm_](Requests& reqs) {
            *staged = to_f32(t.raw(), dtype, n);
            float* buf = staged->get();
            for_each_chunk(n, [&](size_t off, int count) {
              reqs.emplace_back();
              ZT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf + off, count, MPI_FLOAT, mop, comm, &reqs.back()), info.what);
            });
          },
          [=] {
            if (op == ReduceOp::avg) divide_in_place(staged->get(), DType::f32, n, group);
            from_f32(staged->get(), dtype, t.raw(), n);
          });
    }
    const MPI_Datatype type = mpi_datatype(dtype);
    const size_t esize = dtype_size(dtype);
    return submit(info, {t},
        [=, comm = comm_](Requests& reqs) {
          for_each_chunk(n, [&](size_t off, int count) {
            reqs.emplace_back();
            ZT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, bytes_of(t) + off * esize, count, type, mop, comm, &reqs.back()),
                         info.what);
          });
        },
        [=] {
          if (op == ReduceOp::avg) divide_in_place(t.raw(), dtype, n, group);
        });
  }

  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op, const OpInfo& info) override {
    return reduce_scatter_impl(output, input, std::vector<int64_t>(size_, output.numel()), true, op, info);
  }

  Work reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts, ReduceOp op,
                        const OpInfo& info) override {
    return reduce_scatter_impl(output, input, counts, false, op, info);
  }

  Work all_gather(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    const int count = checked_count(input.numel(), info);
    const MPI_Datatype type = mpi_datatype(input.dtype());
    const size_t chunk_bytes = input.nbytes();
    const bool in_place = bytes_of(input) == bytes_of(output) + size_t(rank_) * chunk_bytes;
    const bool copy_input = !in_place && overlaps(input, output);
    auto copy = std::make_shared<std::vector<char>>();
    return submit(info, {output, input}, [=, comm = comm_](Requests& reqs) {
      const void* send = in_place ? MPI_IN_PLACE : input.raw();
      if (copy_input) {
        copy->assign(bytes_of(input), bytes_of(input) + chunk_bytes);
        send = copy->data();
      }
      reqs.emplace_back();
      ZT_MPI_CHECK(MPI_Iallgather(send, count, type, output.raw(), count, type, comm, &reqs.back()), info.what);
    });
  }

  Work all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                    const OpInfo& info) override {
    const std::vector<int> icounts = checked_counts(counts, info);
    const std::vector<int> displs = int_offsets(icounts);
    const MPI_Datatype type = mpi_datatype(input.dtype());
    const size_t esize = dtype_size(input.dtype());
    const int my_count = icounts[size_t(rank_)];
    const bool in_place = bytes_of(input) == bytes_of(output) + size_t(displs[size_t(rank_)]) * esize;
    const bool copy_input = !in_place && overlaps(input, output);
    auto copy = std::make_shared<std::vector<char>>();
    return submit(info, {output, input}, [=, comm = comm_](Requests& reqs) {
      const void* send = in_place ? MPI_IN_PLACE : input.raw();
      if (copy_input) {
        copy->assign(bytes_of(input), bytes_of(input) + input.nbytes());
        send = copy->data();
      }
      reqs.emplace_back();
      ZT_MPI_CHECK(MPI_Iallgatherv(send, my_count, type, output.raw(), icounts.data(), displs.data(), type, comm,
                                   &reqs.back()),
                   info.what);
    });
  }

  Work broadcast(const Tensor& t, int root, const OpInfo& info) override {
    const size_t n = size_t(t.numel());
    const MPI_Datatype type = mpi_datatype(t.dtype());
    const size_t esize = dtype_size(t.dtype());
    return submit(info, {t}, [=, comm = comm_](Requests& reqs) {
      for_each_chunk(n, [&](size_t off, int count) {
        reqs.emplace_back();
        ZT_MPI_CHECK(MPI_Ibcast(bytes_of(t) + off * esize, count, type, root, comm, &reqs.back()), info.what);
      });
    });
  }

  Work reduce(const Tensor& t, int root, ReduceOp op, const OpInfo& info) override {
    const size_t n = size_t(t.numel());
    const DType dtype = t.dtype();
    const MPI_Op mop = mpi_reduce_op(op);
    const bool is_root = rank_ == root;
    const int group = size_;
    if (needs_f32_staging(dtype)) {
      auto staged = std::make_shared<std::unique_ptr<float[]>>();
      return submit(info, {t},
          [=, comm = comm_](Requests& reqs) {
            *staged = to_f32(t.raw(), dtype, n);
            float* buf = staged->get();
            for_each_chunk(n, [&](size_t off, int count) {
              reqs.emplace_back();
              ZT_MPI_CHECK(MPI_Ireduce(is_root ? MPI_IN_PLACE : buf + off, is_root ? buf + off : nullptr, count, MPI_FLOAT,
                                       mop, root, comm, &reqs.back()),
                           info.what);
            });
          },
          [=] {
            if (!is_root) return;
            if (op == ReduceOp::avg) divide_in_place(staged->get(), DType::f32, n, group);
            from_f32(staged->get(), dtype, t.raw(), n);
          });
    }
    const MPI_Datatype type = mpi_datatype(dtype);
    const size_t esize = dtype_size(dtype);
    return submit(info, {t},
        [=, comm = comm_](Requests& reqs) {
          for_each_chunk(n, [&](size_t off, int count) {
            char* buf = bytes_of(t) + off * esize;
            reqs.emplace_back();
            // recvbuf matters only at the root; elsewhere none is given, so that nothing is written.
            ZT_MPI_CHECK(MPI_Ireduce(is_root ? MPI_IN_PLACE : buf, is_root ? buf : nullptr, count, type, mop, root, comm,
                                     &reqs.back()),
                         info.what);
          });
        },
        [=] {
          if (is_root && op == ReduceOp::avg) divide_in_place(t.raw(), dtype, n, group);
        });
  }

  Work all_to_all(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    const int count = checked_count(input.numel() / size_, info);
    const MPI_Datatype type = mpi_datatype(input.dtype());
    return submit(info, {output, input}, [=, comm = comm_](Requests& reqs) {
      reqs.emplace_back();
      ZT_MPI_CHECK(MPI_Ialltoall(input.raw(), count, type, output.raw(), count, type, comm, &reqs.back()), info.what);
    });
  }

  Work send(const Tensor& t, int dst, int tag, const OpInfo& info) override {
    return point_to_point(t, dst, tag, true, info);
  }
  Work recv(const Tensor& t, int src, int tag, const OpInfo& info) override {
    return point_to_point(t, src, tag, false, info);
  }

  Work barrier(const OpInfo& info) override {
    return submit(info, {}, [=, comm = comm_](Requests& reqs) {
      reqs.emplace_back();
      ZT_MPI_CHECK(MPI_Ibarrier(comm, &reqs.back()), info.what);
    });
  }

  std::shared_ptr<Backend> split(int color, int key, double timeout_s) override {
    OpInfo info;
    info.op = "split";
    info.what = str("splitting an MPI communicator of size ", size_, " (color ", color, ", key ", key, ")");
    info.timeout_s = timeout_s;
    // Shared with the progress thread, which may still write it after a caller that timed out left.
    struct Child {
      MPI_Comm comm = MPI_COMM_NULL;
      int rank = 0, size = 0;
    };
    auto child = std::make_shared<Child>();
    runtime_->call(info, [child, info, color, key, comm = comm_] {
      ZT_MPI_CHECK(MPI_Comm_split(comm, color < 0 ? MPI_UNDEFINED : color, key, &child->comm), info.what);
      if (child->comm == MPI_COMM_NULL) return;
      ZT_MPI_CHECK(MPI_Comm_set_errhandler(child->comm, MPI_ERRORS_RETURN), info.what);
      ZT_MPI_CHECK(MPI_Comm_rank(child->comm, &child->rank), info.what);
      ZT_MPI_CHECK(MPI_Comm_size(child->comm, &child->size), info.what);
    });
    if (child->comm == MPI_COMM_NULL) return nullptr;
    return std::make_shared<MpiBackend>(runtime_, child->comm, child->rank, child->size);
  }

  bool failed() const override { return runtime_->broken(); }
  std::string failure() const override { return runtime_->failure(); }

 private:
  // Builds the op; the tensors listed stay alive until it finished.
  Work submit(const OpInfo& info, std::vector<Tensor> keep, std::function<void(Requests&)> start,
              std::function<void()> finish = {}) {
    auto op = std::make_shared<MpiOp>();
    op->work = runtime_->make_work(info);
    op->start = std::move(start);
    op->finish = [keep = std::move(keep), finish = std::move(finish)] {
      if (finish) finish();
    };
    return runtime_->submit(op);
  }

  Work reduce_scatter_impl(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts, bool equal,
                           ReduceOp op, const OpInfo& info) {
    const std::vector<int> icounts = equal ? std::vector<int>(size_, checked_count(counts[0], info))
                                           : checked_counts(counts, info);
    const DType dtype = input.dtype();
    const MPI_Op mop = mpi_reduce_op(op);
    const size_t in_n = size_t(input.numel());
    const size_t out_n = size_t(output.numel());
    const int group = size_;
    const bool staged = needs_f32_staging(dtype);
    // MPI forbids aliased send and receive buffers: an output inside the input (ZeRO's in-place
    // reduce-scatter into a rank's own partition) is received into a temporary.
    const bool via_temp = staged || overlaps(output, input);
    const MPI_Datatype type = staged ? MPI_FLOAT : mpi_datatype(dtype);
    const size_t esize = staged ? sizeof(float) : dtype_size(dtype);
    auto in_f32 = std::make_shared<std::unique_ptr<float[]>>();
    auto temp = std::make_shared<std::vector<char>>();
    return submit(info, {output, input},
        [=, comm = comm_](Requests& reqs) {
          const void* send = input.raw();
          if (staged) {
            *in_f32 = to_f32(input.raw(), dtype, in_n);
            send = in_f32->get();
          }
          void* recv = output.raw();
          if (via_temp) {
            temp->resize(out_n * esize);
            recv = temp->data();
          }
          reqs.emplace_back();
          if (equal) {
            ZT_MPI_CHECK(MPI_Ireduce_scatter_block(send, recv, icounts[0], type, mop, comm, &reqs.back()), info.what);
          } else {
            ZT_MPI_CHECK(MPI_Ireduce_scatter(send, recv, icounts.data(), type, mop, comm, &reqs.back()), info.what);
          }
        },
        [=] {
          in_f32->reset();
          void* result = via_temp ? static_cast<void*>(temp->data()) : output.raw();
          if (op == ReduceOp::avg) divide_in_place(result, staged ? DType::f32 : dtype, out_n, group);
          if (staged) from_f32(static_cast<const float*>(result), dtype, output.raw(), out_n);
          else if (via_temp) std::memcpy(output.raw(), result, out_n * esize);
        });
  }

  Work point_to_point(const Tensor& t, int peer, int tag, bool is_send, const OpInfo& info) {
    const size_t n = size_t(t.numel());
    const MPI_Datatype type = mpi_datatype(t.dtype());
    const size_t esize = dtype_size(t.dtype());
    return submit(info, {t}, [=, comm = comm_](Requests& reqs) {
      for_each_chunk(n, [&](size_t off, int count) {
        reqs.emplace_back();
        char* buf = bytes_of(t) + off * esize;
        if (is_send) ZT_MPI_CHECK(MPI_Isend(buf, count, type, peer, tag, comm, &reqs.back()), info.what);
        else ZT_MPI_CHECK(MPI_Irecv(buf, count, type, peer, tag, comm, &reqs.back()), info.what);
      });
    });
  }

  std::shared_ptr<MpiRuntime> runtime_;
  MPI_Comm comm_;
  int rank_;
  int size_;
};

}  // namespace

std::shared_ptr<Backend> make_mpi_world_backend() {
  auto runtime = MpiRuntime::get();
  return std::make_shared<MpiBackend>(runtime, MPI_COMM_WORLD, runtime->world_rank(), runtime->world_size());
}

}  // namespace zt::comm
