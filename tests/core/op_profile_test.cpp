// The op profiler counts each op once per call under its name (nested ops in the outermost),
// and nothing while it is off.
#include <gtest/gtest.h>

#include "zt/core/op_profile.hpp"
#include "zt/kernels/ops.hpp"

#include <sstream>

namespace zt {
namespace {

// The call count the table gives op `name`, or -1 when it has no line.
long long calls_of(const std::string& table, const std::string& name) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string op, calls_word;
    long long calls = 0;
    if (words >> op >> calls >> calls_word && op == name && calls_word == "calls") return calls;
  }
  return -1;
}

TEST(OpProfile, CountsCallsPerOpAndNothingWhenOff) {
  set_op_profiling(true);
  op_profile_reset();
  const Tensor a = Tensor::from_floats({4}, {1, 2, 3, 4}), b = Tensor::from_floats({4}, {4, 3, 2, 1});
  const Tensor c = Tensor::empty({4}, DType::f32);
  for (int i = 0; i < 3; ++i) ops::add(c, a, b);
  ops::add_(c, a);  // add_ runs add inside: counted once, as add_ (the outermost scope)
  ops::sum_squares(c);
  const std::string table = op_profile_table();
  EXPECT_EQ(calls_of(table, "add"), 3) << table;
  EXPECT_EQ(calls_of(table, "add_"), 1) << table;
  EXPECT_EQ(calls_of(table, "sum_squares"), 1) << table;
  set_op_profiling(false);
  ops::add(c, a, b);
  set_op_profiling(true);
  EXPECT_EQ(calls_of(op_profile_table(), "add"), 3);
  op_profile_reset();
  EXPECT_EQ(calls_of(op_profile_table(), "add"), -1);
  set_op_profiling(false);
  EXPECT_EQ(op_profile_table(), "");
}

}  // namespace
}  // namespace zt
