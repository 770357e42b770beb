// main() for multi-rank GoogleTest programs: starts the world group (MPI under mpirun), runs the
// tests on every rank, and exits non-zero on every rank if any rank failed. Rank 0 prints the
// usual GoogleTest report; other ranks print only their failures, prefixed with their rank.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "zt/comm/process_group.hpp"

namespace zt::comm::testing {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                   r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

inline int run_mpi_tests(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // A hang in a test fails within a minute instead of the default ten.
  setenv("ZT_COMM_TIMEOUT_S", "60", 0);
  auto world = init_process_group();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(world->rank()));
  }
  const int result = RUN_ALL_TESTS();
  Tensor failed = Tensor::from_ints({1}, {result != 0 ? 1 : 0});
  world->all_reduce(failed, ReduceOp::max).wait();
  const bool any_failed = failed.data<int32_t>()[0] != 0;
  world.reset();
  finalize();
  return any_failed ? 1 : 0;
}

}  // namespace zt::comm::testing
