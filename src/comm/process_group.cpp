// ProcessGroup: argument checks, OpInfo, and dispatch to the host or device backend.
#include "zt/comm/process_group.hpp"

#include <algorithm>
#include <set>

#include "backend.hpp"
#include "local/local_backend.hpp"
#include "nccl/nccl_backend.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/core/error.hpp"

namespace zt::comm {

std::vector<int64_t> chunk_offsets(const std::vector<int64_t>& counts) {
  std::vector<int64_t> offsets(counts.size(), 0);
  for (size_t i = 1; i < counts.size(); ++i) offsets[i] = offsets[i - 1] + counts[i - 1];
  return offsets;
}

namespace {

std::string elements(const Tensor& t) { return str(dtype_name(t.dtype()), " x ", t.numel(), " on ", t.device().name()); }

void check_tensor(const Tensor& t, const char* op, const char* arg, bool reduction) {
  ZT_CHECK(t.defined(), op, ": ", arg, " is an undefined tensor");
  if (reduction)
    ZT_CHECK(t.dtype() != DType::b8, op, ": ", arg, " has dtype b8, which has no arithmetic (use u8)");
}

void check_pair(const Tensor& output, const Tensor& input, const char* op) {
  check_tensor(output, op, "output", false);
  check_tensor(input, op, "input", false);
  ZT_CHECK(output.dtype() == input.dtype(), op, ": output dtype ", dtype_name(output.dtype()), " differs from input dtype ",
           dtype_name(input.dtype()));
  check_same_device(output, input, op);
}

void check_counts(const std::vector<int64_t>& counts, int size, const char* op) {
  ZT_CHECK(int(counts.size()) == size, op, ": ", counts.size(), " counts given for a group of ", size, " ranks");
  for (int64_t c : counts) ZT_CHECK(c >= 0, op, ": negative count ", c);
}

int64_t sum_of(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  return total;
}

}  // namespace

ProcessGroup::ProcessGroup(std::string name, std::vector<int> world_ranks, int rank, std::shared_ptr<Backend> host,
                           std::string device_backend, double timeout_s)
    : name_(std::move(name)),
      world_ranks_(std::move(world_ranks)),
      rank_(rank),
      host_(std::move(host)),
      device_kind_(std::move(device_backend)),
      timeout_s_(timeout_s) {}

ProcessGroup::~ProcessGroup() = default;

std::string ProcessGroup::describe() const { return str("group '", name_, "' (size ", size(), ")"); }

std::string ProcessGroup::backend_name() const {
  if (device_kind_ == "nccl") return host_->name() + "+nccl";
  return host_->name();
}

void ProcessGroup::set_timeout_s(double seconds) {
  ZT_CHECK(seconds > 0, "communication timeout must be positive, got ", seconds, " s");
  timeout_s_.store(seconds);
}

OpInfo ProcessGroup::make_info(const char* op, size_t bytes, const std::string& detail) const {
  OpInfo info;
  info.op = op;
  info.bytes = bytes;
  info.what = str(op, " of ", bytes, " bytes (", detail, ") on ", describe());
  info.group_size = size();
  info.timeout_s = timeout_s_.load();
  info.profile = comms_logger().should_profile(op);
  info.cuda_stream = cuda_stream_;
  return info;
}

Backend& ProcessGroup::backend_for(const Tensor& t, const char* op, bool point_to_point) {
  if (t.device().is_cpu()) return *host_;
  return device_backend(t.device().index, op, point_to_point);
}

Backend& ProcessGroup::device_backend(int device, const char* op, bool point_to_point) {
  std::lock_guard<std::mutex> lock(device_mutex_);
  if (!device_) {
    ZT_CHECK(device_kind_ != "none", op, " on ", describe(), ": backend '", host_->name(),
             "' takes host tensors, not CUDA tensors (use backend 'nccl' or 'auto')");
    // Creating the communicator is collective over the group; send/recv involve two ranks only.
    ZT_CHECK(!point_to_point || size() <= 2, op, " on ", describe(),
             ": the group's NCCL communicator does not exist yet, and creating it needs every rank: call "
             "init_cuda(device) on every rank of the group first");
    if (device_kind_ == "local") device_ = make_local_backend();
    else device_ = make_nccl_backend(*host_, rank_, size(), device, timeout_s_.load(), describe());
    device_index_ = device;
  }
  ZT_CHECK(device == device_index_, op, " on ", describe(), ": tensor on cuda:", device,
           ", but the group's communicator is on cuda:", device_index_);
  return *device_;
}

void ProcessGroup::init_cuda(int device) { device_backend(device, "init_cuda", false); }

Work ProcessGroup::all_reduce(const Tensor& tensor, ReduceOp op) {
  check_tensor(tensor, "all_reduce", "tensor", true);
  const OpInfo info = make_info("all_reduce", tensor.nbytes(), str(elements(tensor), ", ", reduce_op_name(op)));
  return backend_for(tensor, info.op).all_reduce(tensor, op, info);
}

Work ProcessGroup::reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) {
  check_pair(output, input, "reduce_scatter");
  check_tensor(input, "reduce_scatter", "input", true);
  ZT_CHECK(input.numel() == output.numel() * size(), "reduce_scatter on ", describe(), ": input has ", input.numel(),
           " elements, expected size * output = ", size(), " * ", output.numel());
  const OpInfo info = make_info("reduce_scatter", input.nbytes(), str(elements(input), ", ", reduce_op_name(op)));
  return backend_for(input, info.op).reduce_scatter(output, input, op, info);
}

Work ProcessGroup::reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts,
                                    ReduceOp op) {
  check_pair(output, input, "reduce_scatter_v");
  check_tensor(input, "reduce_scatter_v", "input", true);
  check_counts(counts, size(), "reduce_scatter_v");
  ZT_CHECK(input.numel() == sum_of(counts), "reduce_scatter_v on ", describe(), ": input has ", input.numel(),
           " elements, the counts sum to ", sum_of(counts));
  ZT_CHECK(output.numel() == counts[size_t(rank_)], "reduce_scatter_v on ", describe(), ": output has ", output.numel(),
           " elements, this rank's count is ", counts[size_t(rank_)]);
  const OpInfo info = make_info("reduce_scatter_v", input.nbytes(), str(elements(input), ", ", reduce_op_name(op)));
  return backend_for(input, info.op).reduce_scatter_v(output, input, counts, op, info);
}

Work ProcessGroup::all_gather(const Tensor& output, const Tensor& input) {
  check_pair(output, input, "all_gather");
  ZT_CHECK(output.numel() == input.numel() * size(), "all_gather on ", describe(), ": output has ", output.numel(),
           " elements, expected size * input = ", size(), " * ", input.numel());
  const OpInfo info = make_info("all_gather", output.nbytes(), elements(output));
  return backend_for(input, info.op).all_gather(output, input, info);
}

Work ProcessGroup::all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>& counts) {
  check_pair(output, input, "all_gather_v");
  check_counts(counts, size(), "all_gather_v");
  ZT_CHECK(output.numel() == sum_of(counts), "all_gather_v on ", describe(), ": output has ", output.numel(),
           " elements, the counts sum to ", sum_of(counts));
  ZT_CHECK(input.numel() == counts[size_t(rank_)], "all_gather_v on ", describe(), ": input has ", input.numel(),
           " elements, this rank's count is ", counts[size_t(rank_)]);
  const OpInfo info = make_info("all_gather_v", output.nbytes(), elements(output));
  return backend_for(input, info.op).all_gather_v(output, input, counts, info);
}

Work ProcessGroup::broadcast(const Tensor& tensor, int root) {
  check_tensor(tensor, "broadcast", "tensor", false);
  ZT_CHECK(root >= 0 && root < size(), "broadcast on ", describe(), ": root ", root, " is not a rank of the group");
  const OpInfo info = make_info("broadcast", tensor.nbytes(), str(elements(tensor), ", root ", root));
  return backend_for(tensor, info.op).broadcast(tensor, root, info);
}

Work ProcessGroup::reduce(const Tensor& tensor, int root, ReduceOp op) {
  check_tensor(tensor, "reduce", "tensor", true);
  ZT_CHECK(root >= 0 && root < size(), "reduce on ", describe(), ": root ", root, " is not a rank of the group");
  const OpInfo info =
      make_info("reduce", tensor.nbytes(), str(elements(tensor), ", ", reduce_op_name(op), ", root ", root));
  return backend_for(tensor, info.op).reduce(tensor, root, op, info);
}

Work ProcessGroup::all_to_all(const Tensor& output, const Tensor& input) {
  check_pair(output, input, "all_to_all");
  ZT_CHECK(output.numel() == input.numel() && input.numel() % size() == 0, "all_to_all on ", describe(),
           ": input and output need the same number of elements, a multiple of the group size; got ", input.numel(),
           " and ", output.numel());
  const char* a = static_cast<const char*>(input.raw());
  const char* b = static_cast<const char*>(output.raw());
  ZT_CHECK(input.nbytes() == 0 || a + input.nbytes() <= b || b + output.nbytes() <= a, "all_to_all on ", describe(),
           ": input and output overlap");
  const OpInfo info = make_info("all_to_all", input.nbytes(), elements(input));
  return backend_for(input, info.op).all_to_all(output, input, info);
}

Work ProcessGroup::send(const Tensor& tensor, int dst, int tag) {
  check_tensor(tensor, "send", "tensor", false);
  ZT_CHECK(dst >= 0 && dst < size(), "send on ", describe(), ": destination ", dst, " is not a rank of the group");
  ZT_CHECK(tag >= 0, "send on ", describe(), ": tag ", tag, " is negative");
  const OpInfo info = make_info("send", tensor.nbytes(), str(elements(tensor), ", to rank ", dst, ", tag ", tag));
  return backend_for(tensor, info.op, true).send(tensor, dst, tag, info);
}

Work ProcessGroup::recv(const Tensor& tensor, int src, int tag) {
  check_tensor(tensor, "recv", "tensor", false);
  ZT_CHECK(src >= 0 && src < size(), "recv on ", describe(), ": source ", src, " is not a rank of the group");
  ZT_CHECK(tag >= 0, "recv on ", describe(), ": tag ", tag, " is negative");
  const OpInfo info = make_info("recv", tensor.nbytes(), str(elements(tensor), ", from rank ", src, ", tag ", tag));
  return backend_for(tensor, info.op, true).recv(tensor, src, tag, info);
}

Work ProcessGroup::barrier() {
  const OpInfo info = make_info("barrier", 0, "no data");
  return host_->barrier(info);
}

std::shared_ptr<ProcessGroup> ProcessGroup::new_group(const std::vector<int>& ranks, const std::string& name) {
  ZT_CHECK(!ranks.empty(), "new_group on ", describe(), ": no ranks given");
  std::set<int> seen;
  std::string list;
  for (int r : ranks) {
    ZT_CHECK(r >= 0 && r < size(), "new_group on ", describe(), ": rank ", r, " is not a rank of the group");
    ZT_CHECK(seen.insert(r).second, "new_group on ", describe(), ": rank ", r, " is listed twice");
    list += str(list.empty() ? "" : ",", r);
  }
  const auto me = std::find(ranks.begin(), ranks.end(), rank_);
  const int color = me == ranks.end() ? -1 : 0;
  const int key = int(me - ranks.begin());
  return split(color, key, name.empty() ? str(name_ == "world" ? "" : name_ + "/", "ranks ", list) : name);
}

std::shared_ptr<ProcessGroup> ProcessGroup::split(int color, int key, const std::string& name) {
  std::shared_ptr<Backend> child = host_->split(color, key, timeout_s_.load());
  if (!child) return nullptr;
  // The members' world ranks, gathered over the new group.
  Tensor mine = Tensor::from_ints({1}, {world_ranks_[size_t(rank_)]});
  Tensor all = Tensor::empty({child->size()}, DType::i32);
  OpInfo info;
  info.op = "all_gather";
  info.bytes = all.nbytes();
  info.what = str("all_gather of the world ranks of a new sub-group of ", describe());
  info.group_size = child->size();
  info.timeout_s = timeout_s_.load();
  child->all_gather(all, mine, info).wait();
  std::vector<int> world_ranks(all.data<int32_t>(), all.data<int32_t>() + child->size());
  const std::string group_name = name.empty() ? str(name_, "/split ", color) : name;
  return std::make_shared<ProcessGroup>(group_name, std::move(world_ranks), child->rank(), child, device_kind_,
                                        timeout_s_.load());
}

}  // namespace zt::comm
