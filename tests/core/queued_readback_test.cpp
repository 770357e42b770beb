// QueuedReadback: on the host the copy is taken at queue(); on a GPU wait() returns the values the
// source had when it was queued, even where the copy is still running when wait() is called
// (64 MiB, so that a wait that returned early would read the buffer before the copy filled it)
// and where the source is overwritten on the stream right after.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "zt/core/device.hpp"
#include "zt/core/queued_readback.hpp"

namespace zt {
namespace {

bool all_equal(const Tensor& t, float value) {
  const float* p = t.data<float>();
  return std::all_of(p, p + t.numel(), [&](float v) { return v == value; });
}

TEST(QueuedReadback, OnTheHostTheCopyIsTakenAtQueue) {
  const Tensor src = Tensor::from_floats({3}, {1, 2, 3});
  QueuedReadback r;
  EXPECT_FALSE(r.pending());
  EXPECT_THROW(r.wait(), Error);
  r.queue(src);
  EXPECT_TRUE(r.pending());
  src.fill_(9.0);
  EXPECT_EQ(r.wait().to_floats(), (std::vector<float>{1, 2, 3}));
  EXPECT_FALSE(r.pending());
}

TEST(QueuedReadbackCuda, WaitReturnsTheValuesAtQueue) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  const int64_t n = int64_t(1) << 24;  // 64 MiB of f32
  const Tensor src = Tensor::empty({n}, DType::f32, Device::cuda(0));
  const Tensor host_values = Tensor::empty({n}, DType::f32);
  QueuedReadback r;
  for (int round = 0; round < 3; ++round) {
    host_values.fill_(5.0 + round);
    src.copy_from(host_values);
    r.queue(src);  // the second round on writes the pinned buffer that held the first round's values
    EXPECT_TRUE(r.pending());
    const Tensor& got = r.wait();
    EXPECT_TRUE(got.device().is_cpu());
    EXPECT_TRUE(all_equal(got, float(5.0 + round))) << "round " << round;
  }
  // A small source, overwritten on the stream as soon as its copy is queued.
  const Tensor one = Tensor::empty({1}, DType::f32, Device::cuda(0));
  one.copy_from(Tensor::from_floats({1}, {1.5f}));
  r.queue(one);
  one.copy_from(Tensor::from_floats({1}, {-2.0f}));  // staged: queued behind the readback
  EXPECT_EQ(r.wait().to_floats(), (std::vector<float>{1.5f}));
  EXPECT_EQ(one.to_floats(), (std::vector<float>{-2.0f}));
}

}  // namespace
}  // namespace zt
