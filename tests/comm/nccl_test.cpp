// The NCCL backend at world size 1 on the first GPU (skipped without one); the CPU-only build's
// refusal.
#include <gtest/gtest.h>

#include "comm_test_values.hpp"
#include "comm/local/local_backend.hpp"
#include "comm/nccl/nccl_backend.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/device.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;
using namespace zt::comm::testing;

namespace {

std::shared_ptr<ProcessGroup> nccl_group() {
  return std::make_shared<ProcessGroup>("nccl-1", std::vector<int>{0}, 0, make_local_backend(), "nccl", 60.0);
}

Tensor on_gpu(const Tensor& host) { return host.to(Device::cuda(0)); }

void expect_equal(const Tensor& device, const Tensor& host, const std::string& what) {
  EXPECT_EQ(device.to(Device::cpu()).to_floats(), host.to_floats()) << what;
}

}  // namespace

TEST(CommNccl, CpuOnlyBuildRefusesClearly) {
  if (nccl_is_built()) GTEST_SKIP() << "this build has NCCL";
  auto local = make_local_backend();
  try {
    make_nccl_backend(*local, 0, 1, 0, 1.0, "group 'world' (size 1)");
    FAIL() << "expected a zt::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("this build has no CUDA/NCCL"), std::string::npos) << e.message();
  }
}

TEST(CommNccl, CollectivesAtWorldSizeOne) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  auto pg = nccl_group();
  pg->init_cuda(0);
  EXPECT_EQ(pg->backend_name(), "local+nccl");
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8}) {
    const Tensor ref = rank_tensor(dtype, 0, 1001);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min}) {
      Tensor t = on_gpu(ref);
      pg->all_reduce(t, op).wait();
      expect_equal(t, ref, str("all_reduce ", reduce_op_name(op), " ", dtype_name(dtype)));
      t = on_gpu(ref);
      pg->reduce(t, 0, op).wait();
      expect_equal(t, ref, "reduce");
    }
    Tensor in = on_gpu(ref);
    Tensor out = Tensor::zeros({1001}, dtype, Device::cuda(0));
    pg->all_gather(out, in).wait();
    expect_equal(out, ref, "all_gather");
    out = Tensor::zeros({1001}, dtype, Device::cuda(0));
    pg->reduce_scatter(out, in).wait();
    expect_equal(out, ref, "reduce_scatter");
    out = Tensor::zeros({1001}, dtype, Device::cuda(0));
    pg->all_gather_v(out, in, {1001}).wait();
    expect_equal(out, ref, "all_gather_v");
    out = Tensor::zeros({1001}, dtype, Device::cuda(0));
    pg->reduce_scatter_v(out, in, {1001}).wait();
    expect_equal(out, ref, "reduce_scatter_v");
    out = Tensor::zeros({1001}, dtype, Device::cuda(0));
    pg->all_to_all(out, in).wait();
    expect_equal(out, ref, "all_to_all");
    pg->broadcast(in, 0).wait();
    expect_equal(in, ref, "broadcast");
  }
  pg->barrier().wait();
}

TEST(CommNccl, AsyncWorkAndLogger) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  auto pg = nccl_group();
  comms_logger().reset();
  comms_logger().configure({.enabled = true, .verbose = false, .prof_all = true, .prof_ops = {}});
  std::vector<Tensor> tensors;
  std::vector<Work> works;
  for (int k = 0; k < 4; ++k) {
    tensors.push_back(on_gpu(rank_tensor(DType::f32, 0, 1 << 20, k)));
    works.push_back(pg->all_reduce(tensors.back()));
  }
  wait_all(works);
  for (const Work& w : works) EXPECT_TRUE(w.is_completed());
  comms_logger().configure({});
  const auto stats = comms_logger().stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].op, "all_reduce");
  EXPECT_EQ(stats[0].count, 4);
  EXPECT_GT(stats[0].total_s, 0);
  comms_logger().reset();
}

TEST(CommNccl, MpiOnlyGroupRefusesCudaTensors) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  auto pg = std::make_shared<ProcessGroup>("mpi-only", std::vector<int>{0}, 0, make_local_backend(), "none", 60.0);
  Tensor t = Tensor::zeros({4}, DType::f32, Device::cuda(0));
  EXPECT_THROW(pg->all_reduce(t), Error);
}
