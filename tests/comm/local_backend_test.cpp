// The world of one process: no launcher, no MPI; every collective is the identity or a copy.
#include <gtest/gtest.h>

#include "comm_test_values.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;
using namespace zt::comm::testing;

namespace {

std::shared_ptr<ProcessGroup> local_world() {
  auto pg = init_process_group();  // not launched: the factory picks "local"
  EXPECT_EQ(pg->backend_name(), "local");
  return pg;
}

void expect_equal(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.to_floats(), b.to_floats());
}

}  // namespace

TEST(CommLocal, PickedWhenNotLaunched) {
  ASSERT_EQ(launched_world_size(), 1) << "run this program on its own, not under mpirun";
  auto pg = local_world();
  EXPECT_EQ(pg->size(), 1);
  EXPECT_EQ(pg->rank(), 0);
  EXPECT_EQ(pg->world_ranks(), std::vector<int>{0});
  EXPECT_EQ(world(), pg);
  EXPECT_EQ(init_process_group(), pg);  // a second init returns the same group
  EXPECT_THROW(init_process_group({.backend = "mpi"}), Error);
  EXPECT_THROW(init_process_group({.backend = "gloo"}), Error);
}

TEST(CommLocal, CollectivesOfOneRank) {
  auto pg = local_world();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8}) {
    const Tensor ref = rank_tensor(dtype, 0, 37);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min}) {
      Tensor t = ref.clone();
      pg->all_reduce(t, op).wait();
      expect_equal(t, ref);
      t = ref.clone();
      pg->reduce(t, 0, op).wait();
      expect_equal(t, ref);
    }
    Tensor out = Tensor::empty({37}, dtype);
    pg->all_gather(out, ref).wait();
    expect_equal(out, ref);
    out = Tensor::empty({37}, dtype);
    pg->reduce_scatter(out, ref).wait();
    expect_equal(out, ref);
    out = Tensor::empty({37}, dtype);
    pg->all_gather_v(out, ref, {37}).wait();
    expect_equal(out, ref);
    out = Tensor::empty({37}, dtype);
    pg->reduce_scatter_v(out, ref, {37}).wait();
    expect_equal(out, ref);
    out = Tensor::empty({37}, dtype);
    pg->all_to_all(out, ref).wait();
    expect_equal(out, ref);
    Tensor b = ref.clone();
    pg->broadcast(b, 0).wait();
    expect_equal(b, ref);
  }
  pg->barrier().wait();
}

TEST(CommLocal, SendToSelfThenReceive) {
  auto pg = local_world();
  Tensor a = rank_tensor(DType::f32, 0, 5, 1), b = rank_tensor(DType::f32, 0, 5, 2);
  pg->send(a, 0, 1).wait();
  pg->send(b, 0, 2).wait();
  Tensor got = Tensor::empty({5}, DType::f32);
  pg->recv(got, 0, 2).wait();
  expect_equal(got, b);
  pg->recv(got, 0, 1).wait();
  expect_equal(got, a);
  EXPECT_THROW(pg->recv(got, 0, 1), Error);  // nothing left to receive
}

TEST(CommLocal, SubGroups) {
  auto pg = local_world();
  auto g = pg->new_group({0}, "solo");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->name(), "solo");
  EXPECT_EQ(g->size(), 1);
  EXPECT_EQ(pg->split(-1, 0), nullptr);
  EXPECT_THROW(pg->new_group({1}), Error);
  EXPECT_THROW(pg->new_group({}), Error);
}

TEST(CommLocal, ArgumentsChecked) {
  auto pg = local_world();
  Tensor a = Tensor::zeros({4}, DType::f32);
  EXPECT_THROW(pg->all_gather(Tensor::zeros({5}, DType::f32), a), Error);
  EXPECT_THROW(pg->reduce_scatter_v(a, a, {3}), Error);
  EXPECT_THROW(pg->broadcast(a, 1), Error);
  EXPECT_THROW(pg->all_reduce(Tensor()), Error);
  EXPECT_THROW(pg->all_to_all(a, a), Error);  // input and output overlap
  EXPECT_THROW(pg->set_timeout_s(0), Error);
}
