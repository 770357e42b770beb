// The clip's sum of squares taken slice by slice during the backward (src/engine/
// backward_sum_of_squares.hpp), on the CPU and, where there is one, on a GPU's side stream:
// against the sum over the reported slots computed on the host from the same values, with slots
// reported in the backward's order (descending), out of order, never (holding NaN, so a read of
// them shows), and with slices of several sizes; the same total run after run; a backward that
// does not end the window sums nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/backward_sum_of_squares.hpp"
#include "zt/core/device.hpp"
#include "zt/kernels/ops.hpp"

namespace zt::engine {
namespace {

// Slots of sizes that are not multiples of the vectorized width, with padding between some.
const std::vector<zero::Range> kSlots = {{0, 1000}, {1000, 1003}, {1008, 70000}, {70016, 70017},
                                         {70024, 200000}, {200000, 200768}, {200768, 300001}};
constexpr int64_t kTotal = 300008;

class BackwardSumOfSquaresTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && !cuda_is_available())
      GTEST_SKIP() << "no CUDA device here: this case runs on a GPU machine (scripts/gpu-test)";
  }
  Device device() const { return GetParam() == "cuda" ? Device::cuda(0) : Device::cpu(); }

  // Random values in the slots, zeros in the padding, NaN in the slots listed as unreported.
  Tensor gradients(DType dtype, const std::vector<int>& unreported) {
    std::vector<float> v(size_t(kTotal), 0.0f);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    for (const zero::Range& r : kSlots)
      for (int64_t i = r.begin; i < r.end; ++i) v[size_t(i)] = normal(rng);
    for (int s : unreported)
      for (int64_t i = kSlots[size_t(s)].begin; i < kSlots[size_t(s)].end; ++i)
        v[size_t(i)] = std::numeric_limits<float>::quiet_NaN();
    host_ = Tensor::from_floats({kTotal}, v, dtype);
    return host_.to(device());
  }
  // The host's sum over the listed slots, from the values as stored (after rounding to dtype).
  double expected(const std::vector<int>& slots) const {
    const Tensor wide = host_.to(DType::f64);
    const double* p = wide.data<double>();
    double s = 0;
    for (int slot : slots)
      for (int64_t i = kSlots[size_t(slot)].begin; i < kSlots[size_t(slot)].end; ++i) s += p[i] * p[i];
    return s;
  }
  static double run(BackwardSumOfSquares& sums, const std::vector<int>& order) {
    sums.begin(true);
    for (int s : order) sums.slot_final(s);
    sums.finish();
    EXPECT_TRUE(sums.ready());
    return sums.total().to(Device::cpu()).data<double>()[0];
  }

  Tensor host_;
};

TEST_P(BackwardSumOfSquaresTest, MatchesTheSumOverTheReportedSlots) {
  for (const DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    // Slot 3 never reported (its NaN must not be read); the others in the backward's order, and
    // out of order.
    const Tensor grads = gradients(dtype, {3});
    const std::vector<int> reported = {6, 5, 4, 2, 1, 0};
    for (const int64_t slice : {int64_t(1), int64_t(4096), int64_t(1) << 22}) {
      SCOPED_TRACE(testing::Message() << "slices of " << slice << " elements");
      BackwardSumOfSquares sums(kSlots, grads, slice);
      const double want = expected(reported);
      EXPECT_NEAR(run(sums, reported), want, 1e-12 * want);
      EXPECT_NEAR(run(sums, {1, 5, 0, 6, 2, 4}), want, 1e-12 * want);
    }
  }
}

TEST_P(BackwardSumOfSquaresTest, NeighboursMakeOneSliceUntilItIsFull) {
  const Tensor grads = gradients(DType::f32, {3});
  // 6, 5, 4 are neighbours (one slice, padding included); 3 is not reported, so 2, 1, 0 make another.
  BackwardSumOfSquares whole(kSlots, grads, int64_t(1) << 22);
  run(whole, {6, 5, 4, 2, 1, 0});
  EXPECT_EQ(whole.slices(), 2);
  // Out of order, no slot next to the open slice's ends: each slot its own slice.
  run(whole, {1, 5, 0, 6, 2, 4});
  EXPECT_EQ(whole.slices(), 6);
  // Ascending joins as descending does.
  run(whole, {4, 5, 6, 0, 1, 2});
  EXPECT_EQ(whole.slices(), 2);
  // Slices of 100,000 elements: 6 (99,233) + 5 fills one, 4 (129,976) one, then 2, 1, 0 (70,000).
  BackwardSumOfSquares sliced(kSlots, grads, 100000);
  run(sliced, {6, 5, 4, 2, 1, 0});
  EXPECT_EQ(sliced.slices(), 3);
}

TEST_P(BackwardSumOfSquaresTest, TheSameTotalRunAfterRun) {
  const Tensor grads = gradients(DType::bf16, {});
  BackwardSumOfSquares sums(kSlots, grads, 4096);
  const double first = run(sums, {6, 5, 4, 3, 2, 1, 0});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run(sums, {6, 5, 4, 3, 2, 1, 0}), first);
  EXPECT_NEAR(first, expected({0, 1, 2, 3, 4, 5, 6}), 1e-12 * first);
}

TEST_P(BackwardSumOfSquaresTest, OnlyTheWindowsLastBackwardSums) {
  const Tensor grads = gradients(DType::f32, {});
  BackwardSumOfSquares sums(kSlots, grads);
  run(sums, {6, 5, 4, 3, 2, 1, 0});
  sums.taken();
  EXPECT_FALSE(sums.ready());
  sums.begin(false);  // a micro-batch before the window's last
  for (int s : {6, 5, 4, 3, 2, 1, 0}) sums.slot_final(s);
  sums.finish();
  EXPECT_FALSE(sums.ready());
  EXPECT_EQ(sums.slices(), 0);
  sums.replayed();  // a CUDA graph's replay took the sums
  EXPECT_TRUE(sums.ready());
}

TEST_P(BackwardSumOfSquaresTest, BadSlotsAreRefusedWithTheirName) {
  const Tensor grads = gradients(DType::f32, {});
  BackwardSumOfSquares sums(kSlots, grads);
  sums.begin(true);
  sums.slot_final(2);
  try {
    sums.slot_final(2);
    FAIL() << "a slot reported twice was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("slot 2 reported final twice"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sums.slot_final(7), Error);
  sums.finish();
  EXPECT_THROW(BackwardSumOfSquares({{0, 10}, {5, 20}}, grads), Error);      // overlapping
  EXPECT_THROW(BackwardSumOfSquares({{0, kTotal + 1}}, grads), Error);      // past the buffer
}

INSTANTIATE_TEST_SUITE_P(Devices, BackwardSumOfSquaresTest, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace zt::engine
