// Random fills: small tensors draw from the generator in order; large ones fill in parallel
// blocks with the same values at any thread count, and with the asked-for distribution.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "zt/core/random.hpp"

namespace zt {
namespace {

TEST(RandomFill, SmallTensorsDrawInOrder) {
  Rng a(7), b(7);
  const Tensor t = Tensor::empty({1000}, DType::f64);
  fill_normal(t, 1.0, 2.0, a);
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(t.data<double>()[i], 1.0 + 2.0 * b.normal()) << i;
}

TEST(RandomFill, LargeTensorsAreTheSameAtAnyThreadCountAndNormal) {
  const int64_t n = (int64_t(1) << 24) + 12345;  // past the parallel threshold, a partial last block
  const int threads = omp_get_max_threads();
  Tensor one = Tensor::empty({n}, DType::f32), many = Tensor::empty({n}, DType::f32);
  omp_set_num_threads(1);
  Rng a(11);
  fill_normal(one, 0.0, 1.0, a);
  omp_set_num_threads(std::max(2, threads));
  Rng b(11);
  fill_normal(many, 0.0, 1.0, b);
  omp_set_num_threads(threads);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(one.data<float>()[i], many.data<float>()[i]) << i;
    sum += one.data<float>()[i];
    sq += double(one.data<float>()[i]) * one.data<float>()[i];
  }
  const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 1.0, 1e-3);
  // Blocks draw from distinct streams: the first elements of neighbouring blocks differ.
  EXPECT_NE(one.data<float>()[0], one.data<float>()[int64_t(1) << 20]);
  // Both generators advanced alike: what follows is the same.
  EXPECT_EQ(a.next_u64(), b.next_u64());
}

}  // namespace
}  // namespace zt
