// Every collective of the world group under mpirun -np 2, 3, 4: each rank checks the result
// against values it computes itself for every rank. Sizes that do not divide by the world size,
// every dtype and reduce op; ZT_COMM_MPI_MAX_CHUNK is made small so that large messages go out in
// several MPI calls.
//
// ZT_TEST_COMM_DEVICE=cuda runs the same tests on CUDA tensors through NCCL, each rank on its own
// GPU (cuda:LOCAL_RANK), at any world size from 1 (scripts/multi-gpu/comm.sh); the default, cpu,
// is host tensors over MPI.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "comm/backend.hpp"
#include "comm_test_values.hpp"
#include "mpi_test_main.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/device.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;
using namespace zt::comm::testing;

namespace {

const DType kDtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8};
const ReduceOp kOps[] = {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min};
const int64_t kSizes[] = {1, 7, 1001, 10007};  // 10007 > ZT_COMM_MPI_MAX_CHUNK

// Where the tests' tensors live: the CPU (MPI), or this rank's GPU (NCCL).
Device g_device = Device::cpu();
bool on_gpu() { return g_device.is_cuda(); }
Tensor dev(const Tensor& host) { return host.to(g_device); }
Tensor dev_empty(int64_t n, DType dtype) { return Tensor::empty({n}, dtype, g_device); }
Tensor dev_ints(const std::vector<int32_t>& values) { return dev(Tensor::from_ints({int64_t(values.size())}, values)); }
int int_at(const Tensor& t, size_t i) { return int(t.to_floats()[i]); }

// Checks got[i] against want(i) within the tolerance of op over n ranks: MPI reduces in f32 and
// rounds once; NCCL rounds to the dtype at every step of its ring or tree.
template <class F>
void expect_values(const Tensor& got, DType dtype, int n, F&& want, const std::string& what,
                   ReduceOp op = ReduceOp::sum) {
  const std::vector<float> v = got.to_floats();
  int bad = 0;
  for (size_t i = 0; i < v.size() && bad < 5; ++i) {
    const double exact = want(int64_t(i));
    const double tol = on_gpu() ? stepwise_reduce_tolerance(dtype, op, n) : reduce_tolerance(dtype, exact, n);
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
        Tensor t = dev(rank_tensor(dtype, r, size));
        pg->all_reduce(t, op).wait();
        expect_values(t, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, i); },
                      str("all_reduce ", reduce_op_name(op), " ", dtype_name(dtype), " x ", size), op);
      }
}

TEST(Collectives, AllReduceEmptyTensor) {
  Tensor t = dev_empty(0, DType::f32);
  world()->all_reduce(t).wait();
}

TEST(Collectives, ReduceScatter) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8})
    for (ReduceOp op : kOps)
      for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(333)}) {
        Tensor input = dev(rank_tensor(dtype, r, n * chunk));
        Tensor output = dev_empty(chunk, dtype);
        pg->reduce_scatter(output, input, op).wait();
        expect_values(output, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, r * chunk + i); },
                      str("reduce_scatter ", reduce_op_name(op), " ", dtype_name(dtype), " chunk ", chunk), op);
      }
}

TEST(Collectives, ReduceScatterInPlace) {
  // ZeRO's form: the output is this rank's partition of the flat input buffer.
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    const int64_t chunk = 13;
    Tensor flat = dev(rank_tensor(dtype, r, n * chunk));
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
      Tensor input = dev(rank_tensor(dtype, r, total));
      Tensor output = dev_empty(counts[size_t(r)], dtype);
      pg->reduce_scatter_v(output, input, counts, op).wait();
      expect_values(output, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, offsets[size_t(r)] + i); },
                    str("reduce_scatter_v ", reduce_op_name(op), " ", dtype_name(dtype)), op);
    }
}

TEST(Collectives, AllGather) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8})
    for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(4099)}) {
      Tensor input = dev(rank_tensor(dtype, r, chunk));
      Tensor output = dev_empty(n * chunk, dtype);
      pg->all_gather(output, input).wait();
      expect_values(output, dtype, 1, [&](int64_t i) { return rank_value(dtype, int(i / chunk), i % chunk); },
                    str("all_gather ", dtype_name(dtype), " chunk ", chunk));
    }
}

TEST(Collectives, AllGatherInPlace) {
  auto pg = world();
  const int n = pg->size(), r = pg->rank();
  const int64_t chunk = 11;
  Tensor flat = Tensor::zeros({n * chunk}, DType::bf16, g_device);
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
    Tensor input = dev(rank_tensor(dtype, r, counts[size_t(r)]));
    Tensor output = dev_empty(total, dtype);
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
      Tensor t = dev(rank_tensor(dtype, r, 10007));
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
        Tensor t = dev(rank_tensor(dtype, r, 1001));
        pg->reduce(t, root, op).wait();
        if (r == root)
          expect_values(t, dtype, n, [&](int64_t i) { return reduced_value(dtype, op, n, i); },
                        str("reduce ", reduce_op_name(op), " ", dtype_name(dtype), " to ", root), op);
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
    Tensor input = dev(rank_tensor(dtype, r, n * chunk));
    Tensor output = dev_empty(n * chunk, dtype);
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
  if (on_gpu() && n == 1) GTEST_SKIP() << "NCCL: a rank cannot send to itself outside a group (all_to_all covers it)";
  for (DType dtype : {DType::f32, DType::bf16, DType::i32}) {
    Tensor a = dev(rank_tensor(dtype, r, 10007, 1)), b = dev(rank_tensor(dtype, r, 5, 2));
    Tensor got_a = dev_empty(10007, dtype), got_b = dev_empty(5, dtype);
    if (on_gpu()) {
      // NCCL matches a pair's messages in the order they were sent, not by tag, and a send may
      // wait for its receiver on the communicator's one stream: even ranks send first, odd
      // ranks receive first, so that the ring cannot wait on itself.
      std::vector<Work> works;
      const auto sends = [&] { works.push_back(pg->send(a, next, 1)), works.push_back(pg->send(b, next, 2)); };
      const auto recvs = [&] { works.push_back(pg->recv(got_a, prev, 1)), works.push_back(pg->recv(got_b, prev, 2)); };
      if (r % 2 == 0) sends(), recvs();
      else recvs(), sends();
      wait_all(works);
    } else {
      // Two messages to the same peer, received in the opposite order: the tags tell them apart.
      Work sa = pg->send(a, next, 1), sb = pg->send(b, next, 2);
      Work rb = pg->recv(got_b, prev, 2), ra = pg->recv(got_a, prev, 1);
      wait_all({sa, sb, rb, ra});
    }
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
    tensors.push_back(dev(rank_tensor(DType::f32, r, 4096 + k, k)));
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
  Tensor a = Tensor::zeros({10}, DType::f32, g_device);
  Tensor b = Tensor::zeros({3}, DType::f32, g_device);
  EXPECT_THROW(pg->reduce_scatter(b, a), Error);        // 10 != 3 * n
  EXPECT_THROW(pg->all_gather(a, b), Error);            // 10 != 3 * n (n >= 2)
  EXPECT_THROW(pg->broadcast(a, n), Error);             // no such root
  EXPECT_THROW(pg->send(a, -1), Error);
  EXPECT_THROW(pg->all_reduce(Tensor::zeros({4}, DType::b8, g_device)), Error);
  EXPECT_THROW(pg->all_gather(Tensor::zeros({n * 3}, DType::i32, g_device), b), Error);  // dtypes differ
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
  Tensor t = dev_ints({r, 1, -r});
  g->all_reduce(t).wait();
  int sum = 0;
  for (int k : evens) sum += k;
  EXPECT_EQ(int_at(t, 0), sum);
  EXPECT_EQ(int_at(t, 1), int(evens.size()));
  EXPECT_EQ(int_at(t, 2), -sum);
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
  Tensor t = dev_ints({r});
  g->broadcast(t, 0).wait();  // group rank 0 is world rank n-1
  EXPECT_EQ(int_at(t, 0), n - 1);
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
    Tensor t = dev(rank_tensor(dtype, r, 101));
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
    Tensor t = dev_ints({7, 8});
    solo->all_reduce(t).wait();
    EXPECT_EQ(int_at(t, 0), 7);
  } else {
    EXPECT_EQ(solo, nullptr);
  }
  // Sub-group collectives interleaved with world ones keep their own order.
  Tensor a = dev_ints({1});
  Tensor b = dev_ints({1});
  Work wa = g->all_reduce(a);
  Work wb = pg->all_reduce(b);
  wait_all({wa, wb});
  EXPECT_EQ(int_at(a, 0), int(members.size()));
  EXPECT_EQ(int_at(b, 0), n);
}

TEST(CommsLogger, RecordsEveryProfiledOp) {
  auto pg = world();
  const int n = pg->size();
  comms_logger().reset();
  comms_logger().configure({.enabled = true, .verbose = false, .prof_all = false, .prof_ops = {"all_reduce", "all_gather_into_tensor"}});
  Tensor t = Tensor::zeros({256}, DType::f32, g_device);
  for (int i = 0; i < 3; ++i) pg->all_reduce(t).wait();
  Tensor out = dev_empty(256 * n, DType::f32);
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
  setenv("ZT_COMM_TIMEOUT_S", "60", 0);
  const char* device = std::getenv("ZT_TEST_COMM_DEVICE");
  const std::string where = device && *device ? device : "cpu";
  if (where == "cuda") {
    if (!cuda_is_available()) {
      std::fprintf(stderr, "ZT_TEST_COMM_DEVICE=cuda: no CUDA device is visible here (or this build has no CUDA)\n");
      return 1;
    }
    // NCCL for CUDA tensors (MPI, or nothing at world size 1, underneath), the communicator made
    // here on every rank so that point-to-point tests find it.
    g_device = Device::cuda(launched_local_rank());
    init_process_group({.backend = "nccl", .timeout_s = 0})->init_cuda(g_device.index);
  } else if (where != "cpu") {
    std::fprintf(stderr, "ZT_TEST_COMM_DEVICE=%s: expected cpu or cuda\n", where.c_str());
    return 1;
  }
  return zt::comm::testing::run_mpi_tests(argc, argv);
}
