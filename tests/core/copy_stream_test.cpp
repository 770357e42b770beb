// CopyStream's clearing of a buffer (fill_zero): at once on the host; on a GPU ordered after the
// compute stream's work queued before after_compute() and before the work queued after
// before_compute(), on a buffer large enough that a missing wait would show.
#include <gtest/gtest.h>

#include <vector>

#include "zt/core/copy_stream.hpp"
#include "zt/core/device.hpp"

namespace zt {
namespace {

bool all_zero(const Tensor& t) {
  for (float v : t.to_floats())
    if (v != 0.0f) return false;
  return true;
}

TEST(CopyStream, FillZeroOnTheHostIsImmediate) {
  const Tensor t = Tensor::from_floats({5}, {1, 2, 3, 4, 5}, DType::f32);
  CopyStream s(Device::cpu());
  EXPECT_EQ(s.fill_zero(t), 1u);
  EXPECT_TRUE(all_zero(t));
}

TEST(CopyStreamCuda, FillZeroRunsBetweenTheComputeStreamsWork) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device here: this test runs on a GPU machine (scripts/gpu-test)";
  const Device gpu = Device::cuda(0);
  const int64_t n = int64_t(1) << 26;  // 256 MiB of f32
  const Tensor t = Tensor::empty({n}, DType::f32, gpu);
  CopyStream s(gpu);
  for (int round = 0; round < 3; ++round) {
    t.fill_(3.0 + round);  // queued on the compute stream
    s.after_compute();
    s.fill_zero(t);
    s.before_compute();
    EXPECT_TRUE(all_zero(t)) << "round " << round;  // read through the compute stream
  }
  // Host memory given to a GPU's stream is cleared at once.
  const Tensor host = Tensor::from_floats({3}, {1, 2, 3}, DType::f32);
  s.fill_zero(host);
  EXPECT_TRUE(all_zero(host));
}

}  // namespace
}  // namespace zt
