// Every collective of the world group under mpirun -np 2, 3, 4: each rank checks the result
// against values it computes itself for every rank. Sizes that do not divide by the world size,
// every dtype and reduce op; ZT_COMM_MPI_MAX_CHUNK is made small so that large messages go out in
// several MPI calls.
#include <gtest/gtest.h>

#include <cstdlib>

#include "comm/backend.hpp"
#include "comm_test_values.hpp"
#include "mpi_test_main.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;
using namespace zt::comm::testing;

namespace {

const DType kDtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8};
const ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min};
const int64_t kSizes[] = {1, 7, 1001, 10007};  // 10007 > ZT_COMM_MPI_MAX_CHUNK

// Checks got[i] against want(i) within the reduction tolerance.
template <class F>
void expect_values(const Tensor& got, DType dtype, int n, F&& want, const std::string& what) {
  const std::vector<float> v = got.to_floats();
  int bad = 0;
  for (size_t i = 0; i < v.size() && bad < 5; ++i) {
    const double exact = want(int64_t(i));
    const double tol = reduce_tolerance(dtype, exact, n);
    if (std::abs(double(v[i]) - exact) > tol) {
      ADD_FAILURE() << what << ": element " << i << " is " << v[i] << ", expected " << exact << " (tolerance " << tol << ")";
      ++bad;
    }
  }
}

}  // namespace

TEST(Collectives, AllReduceEveryDtypeOpAndSize) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : kDtypes)
    for (ReduceOp op : kOps)
      for (int64_t size : kSizes) {
        Tensor t = rank_tensor(dtype, r, size);
        pg->all_reduce(t, op).wait();
        expect_values(t, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, i); },
                      str("all_reduce ", reduce_op_name(op), " ", dtype_name(dtype), " x ", size));
      }
}

TEST(Collectives, AllReduceEmptyTensor) {
  Tensor t = Tensor::empty({0}, DType::f32);
  world()->all_reduce(t).wait();
}

TEST(Collectives, ReduceScatter) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8})
    for (ReduceOp op : kOps)
      for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(333)}) {
        Tensor input = rank_tensor(dtype, r, n * chunk);
        Tensor output = Tensor::empty({chunk}, dtype);
        pg->reduce_scatter(output, input, op).wait();
        expect_values(output, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, r * chunk + i); },
                      str("reduce_scatter ", reduce_op_name(op), " ", dtype_name(dtype), " chunk ", chunk));
      }
}

TEST(Collectives, ReduceScatterInPlace) {
  // ZeRO's form: the output is this rank's partition of the flat input buffer.
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    const int64_t chunk = 13;
    Tensor flat = rank_tensor(dtype, r, n * chunk);
    Tensor mine = flat.slice(r * chunk, (r + 1) * chunk);
    pg->reduce_scatter(mine, flat, ReduceOp::sum).wait();
    expect_values(mine, dtype, n, [&](int64_t i) { return reduced_value(dtype, ReduceOp::sum, n, r * chunk + i); },
                  str("in-place reduce_scatter ", dtype_name(dtype)));
  }
}

TEST(Collectives, ReduceScatterUnevenCounts) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  std::vector<int64_t> counts;
  for (int k = 0; k < n; ++k) counts.push_back(2 * k + 3);  // 3, 5, 7, ...: the total does not divide by n
  const std::vector<int64_t> offsets = chunk_offsets(counts);
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  for (DType dtype : {DType::f32, DType::bf16, DType::i64})
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max}) {
      Tensor input = rank_tensor(dtype, r, total);
      Tensor output = Tensor::empty({counts[size_t(r)]}, dtype);
      pg->reduce_scatter_v(output, input, counts, op).wait();
      expect_values(output, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, offsets[size_t(r)] + i); },
                    str("reduce_scatter_v ", reduce_op_name(op), " ", dtype_name(dtype)));
    }
}

TEST(Collectives, AllGather) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8})
    for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(4099)}) {
      Tensor input = rank_tensor(dtype, r, chunk);
      Tensor output = Tensor::empty({n * chunk}, dtype);
      pg->all_gather(output, input).wait();
      expect_values(output, dtype, 1, [&](int64_t i) { return rank_value(dtype, int(i / chunk), i % chunk); },
                    str("all_gather ", dtype_name(dtype), " chunk ", chunk));
    }
}

TEST(Collectives, AllGatherInPlace) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  const int64_t chunk = 11;
  Tensor flat = Tensor::zeros({n * chunk}, DType::bf16);
  Tensor mine = flat.slice(r * chunk, (r + 1) * chunk);
  mine.copy_from(rank_tensor(DType::bf16, r, chunk));
  pg->all_gather(flat, mine).wait();
  expect_values(flat, DType::bf16, 1, [&](int64_t i) { return rank_value(DType::bf16, int(i / chunk), i % chunk); },
                "in-place all_gather");
}

TEST(Collectives, AllGatherUnevenCounts) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  std::vector<int64_t> counts;
  for (int k = 0; k < n; ++k) counts.push_back(k == 1 ? 0 : 5 + k);  // one rank contributes nothing
  const std::vector<int64_t> offsets = chunk_offsets(counts);
  const int64_t total = offsets.back() + counts.back();
  for (DType dtype : {DType::f32, DType::i32, DType::f16}) {
    Tensor input = rank_tensor(dtype, r, counts[size_t(r)]);
    Tensor output = Tensor::empty({total}, dtype);
    pg->all_gather_v(output, input, counts).wait();
    expect_values(output, dtype, 1,
                  [&](int64_t i) {
                    int owner = 0;
                    while (owner + 1 < n && i >= offsets[size_t(owner) + 1]) ++owner;
                    return rank_value(dtype, owner, i - offsets[size_t(owner)]);
                  },
                  str("all_gather_v ", dtype_name(dtype)));
  }
}

TEST(Collectives, BroadcastFromEveryRoot) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::i32, DType::u8})
    for (int root = 0; root < n; ++root) {
      Tensor t = rank_tensor(dtype, r, 10007);
      pg->broadcast(t, root).wait();
      expect_values(t, dtype, 1, [&](int64_t i) { return rank_value(dtype, root, i); },
                    str("broadcast ", dtype_name(dtype), " from ", root));
    }
}

TEST(Collectives, ReduceToEveryRoot) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i8})
    for (ReduceOp op : kOps)
      for (int root = 0; root < n; ++root) {
        Tensor t = rank_tensor(dtype, r, 1001);
        pg->reduce(t, root, op).wait();
        if (r == root)
          expect_values(t, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, i); },
                        str("reduce ", reduce_op_name(op), " ", dtype_name(dtype), " to ", root));
        else  // other ranks' tensors are left as they were
          expect_values(t, dtype, 1, [&](int64_t i) { return rank_value(dtype, r, i); },
                        str("reduce ", dtype_name(dtype), ": non-root tensor"));
      }
}

TEST(Collectives, AllToAll) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::i32, DType::u8}) {
    const int64_t chunk = 9;
    Tensor input = rank_tensor(dtype, r, n * chunk);
    Tensor output = Tensor::empty({n * chunk}, dtype);
    pg->all_to_all(output, input).wait();
    // Chunk j of the output is rank j's input chunk r.
    expect_values(output, dtype, 1, [&](int64_t i) { return rank_value(dtype, int(i / chunk), r * chunk + i % chunk); },
                  str("all_to_all ", dtype_name(dtype)));
  }
}

TEST(Collectives, SendRecvRing) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    // Two messages to the same peer, received in the opposite order: the tags tell them apart.
    Tensor a = rank_tensor(dtype, r, 10007, 1), b = rank_tensor(dtype, r, 5, 2);
    Tensor got_a = Tensor::empty({10007}, dtype), got_b = Tensor::empty({5}, dtype);
    Work sa = pg->send(a, next, 1), sb = pg->send(b, next, 2);
    Work rb = pg->recv(got_b, prev, 2), ra = pg->recv(got_a, prev, 1);
    wait_all({sa, sb, rb, ra});
    expect_values(got_a, dtype, 1, [&](int64_t i) { return rank_value(dtype, prev, i, 1); }, "recv tag 1");
    expect_values(got_b, dtype, 1, [&](int64_t i) { return rank_value(dtype, prev, i, 2); }, "recv tag 2");
  }
}

TEST(Collectives, Barrier) {
  auto pg = world();
  for (int i = 0; i < 5; ++i) pg->barrier().wait();
}

TEST(Collectives, ManyInFlightThenWait) {
  // Calls return before the data moved; the caller computes meanwhile and waits at the end.
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  std::vector<Tensor> tensors;
  std::vector<Work> works;
  for (int k = 0; k < 8; ++k) {
    tensors.push_back(rank_tensor(DType::f32, r, 4096 + k, k));
    works.push_back(pg->all_reduce(tensors.back()));
  }
  double busy = 0;
  for (int i = 0; i < 100000; ++i) busy += std::sqrt(double(i));
  EXPECT_GT(busy, 0);
  wait_all(works);
  for (int k = 0; k < 8; ++k) {
    EXPECT_TRUE(works[size_t(k)].is_completed());
    expect_values(tensors[size_t(k)], DType::f32, n,
                  [&](int64_t i) { return reduced_value(DType::f32, ReduceOp::sum, n, i, k); }, str("in-flight ", k));
  }
}

TEST(Collectives, BadArgumentsThrowBeforeCommunicating) {
  auto pg = world();
  const int n = pg->size();
  Tensor a = Tensor::zeros({10}, DType::f32);
  Tensor b = Tensor::zeros({3}, DType::f32);
  EXPECT_THROW(pg->reduce_scatter(b, a), Error);        // 10 != 3 * n
  EXPECT_THROW(pg->all_gather(a, b), Error);            // 10 != 3 * n (n >= 2)
  EXPECT_THROW(pg->broadcast(a, n), Error);             // no such root
  EXPECT_THROW(pg->send(a, -1), Error);
  EXPECT_THROW(pg->all_reduce(Tensor::zeros({4}, DType::b8)), Error);
  EXPECT_THROW(pg->all_gather(Tensor::zeros({n * 3}, DType::i32), b), Error);  // dtypes differ
  try {
    pg->reduce_scatter(b, a);
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("group 'world'"), std::string::npos) << e.message();
  }
  pg->barrier().wait();  // every rank still agrees on the order of collectives
}

TEST(SubGroups, NewGroupOfEvenRanks) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  std::vector<int> evens;
  for (int k = 0; k < n; k += 2) evens.push_back(k);
  auto g = pg->new_group(evens);
  if (r % 2 == 1) {
    EXPECT_EQ(g, nullptr);
    return;
  }
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->size(), int(evens.size()));
  EXPECT_EQ(g->rank(), r / 2);
  EXPECT_EQ(g->world_ranks(), evens);
  Tensor t = Tensor::from_ints({3}, {r, 1, -r});
  g->all_reduce(t).wait();
  int sum = 0;
  for (int k : evens) sum += k;
  EXPECT_EQ(t.data<int32_t>()[0], sum);
  EXPECT_EQ(t.data<int32_t>()[1], int(evens.size()));
  EXPECT_EQ(t.data<int32_t>()[2], -sum);
}

TEST(SubGroups, RanksNumberedInTheOrderGiven) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  std::vector<int> reversed;
  for (int k = n - 1; k >= 0; --k) reversed.push_back(k);
  auto g = pg->new_group(reversed, "reversed");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->rank(), n - 1 - r);
  EXPECT_EQ(g->name(), "reversed");
  Tensor t = Tensor::from_ints({1}, {r});
  g->broadcast(t, 0).wait();  // group rank 0 is world rank n-1
  EXPECT_EQ(t.data<int32_t>()[0], n - 1);
}

TEST(SubGroups, SplitByParityAndNest) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  auto g = pg->split(r % 2, r);
  ASSERT_NE(g, nullptr);
  std::vector<int> members;
  for (int k = r % 2; k < n; k += 2) members.push_back(k);
  EXPECT_EQ(g->world_ranks(), members);
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    Tensor t = rank_tensor(dtype, r, 101);
    g->all_reduce(t, ReduceOp::sum).wait();
    expect_values(t, dtype, int(members.size()),
                  [&](int64_t i) {
                    double s = 0;
                    for (int k : members) s += rank_value(dtype, k, i);
                    return s;
                  },
                  str("parity group all_reduce ", dtype_name(dtype)));
  }
  // A group of the group's first member alone, and collectives on it.
  auto solo = g->new_group({0});
  if (g->rank() == 0) {
    ASSERT_NE(solo, nullptr);
    EXPECT_EQ(solo->size(), 1);
    EXPECT_EQ(solo->world_ranks(), std::vector<int>{members[0]});
    Tensor t = Tensor::from_ints({2}, {7, 8});
    solo->all_reduce(t).wait();
    EXPECT_EQ(t.data<int32_t>()[0], 7);
  } else {
    EXPECT_EQ(solo, nullptr);
  }
  // Sub-group collectives interleaved with world ones keep their own order.
  Tensor a = Tensor::from_ints({1}, {1});
  Tensor b = Tensor::from_ints({1}, {1});
  Work wa = g->all_reduce(a);
  Work wb = pg->all_reduce(b);
  wait_all({wa, wb});
  EXPECT_EQ(a.data<int32_t>()[0], int(members.size()));
  EXPECT_EQ(b.data<int32_t>()[0], n);
}

TEST(CommsLogger, RecordsEveryProfiledOp) {
  auto pg = world();
  const int n = pg->size();
  comms_logger().reset();
  comms_logger().configure({.enabled = true, .verbose = false, .prof_all = false, .prof_ops = {"all_reduce", "all_gather_into_tensor"}});
  Tensor t = Tensor::zeros({256}, DType::f32);
  for (int i = 0; i < 3; ++i) pg->all_reduce(t).wait();
  Tensor out = Tensor::empty({256 * n}, DType::f32);
  pg->all_gather(out, t).wait();
  pg->broadcast(t, 0).wait();  // not in prof_ops
  comms_logger().configure({});
  const auto stats = comms_logger().stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].op, "all_gather");
  EXPECT_EQ(stats[0].count, 1);
  EXPECT_EQ(stats[0].bytes, size_t(256 * 4 * n));
  EXPECT_EQ(stats[1].op, "all_reduce");
  EXPECT_EQ(stats[1].count, 3);
  EXPECT_EQ(stats[1].bytes, 1024u);
  EXPECT_GT(stats[1].total_s, 0);
  EXPECT_NEAR(stats[1].busbw_sum_gbs, stats[1].algbw_sum_gbs * 2.0 * (n - 1) / n, 1e-9);
  EXPECT_NE(comms_logger().summary_table().find("all_reduce"), std::string::npos);
  comms_logger().reset();
}

int main(int argc, char** argv) {
  setenv("ZT_COMM_MPI_MAX_CHUNK", "4096", 1);
  return zt::comm::testing::run_mpi_tests(argc, argv);
}
