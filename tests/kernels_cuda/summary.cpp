// Prints, after the tests, the worst relative error seen for each checked output and dtype.
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_compare.hpp"

namespace {

class WorstErrorSummary : public ::testing::Environment {
 public:
  void TearDown() override {
    if (zt::test::worst_errors().empty()) return;
    std::printf("worst relative errors (by norm, against the CPU reference):\n");
    for (const auto& [what, err] : zt::test::worst_errors()) std::printf("  %-40s %.3g\n", what.c_str(), err);
  }
};

[[maybe_unused]] ::testing::Environment* const summary =
    ::testing::AddGlobalTestEnvironment(new WorstErrorSummary);

}  // namespace
