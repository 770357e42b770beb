// The vectorized CPU AdamW against the scalar reference loop: within 1e-6 of each buffer's largest
// magnitude (elements near zero carry the other's rounding at full size) over several
// steps, on lengths that leave tails and that split across threads, and the bf16 copy of the
// parameters equal to float_to_bf16 of the f32 result.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.hpp"
#include "zt/core/dtype.hpp"

namespace zt {
namespace {

struct Buffers {
  std::vector<float> param, exp_avg, exp_avg_sq;
};

// max |a - b| / max |b| over a buffer.
double relative(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / scale;
}

void check_fast_against_reference(int64_t n, double weight_decay, double grad_scale) {
  SCOPED_TRACE(testing::Message() << "n " << n << ", weight_decay " << weight_decay << ", grad_scale " << grad_scale);
  uint64_t state = 0x9e3779b97f4a7c15ull ^ uint64_t(n);
  auto uniform = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float(double(state >> 11) / double(1ull << 53) * 2.0 - 1.0);
  };
  Buffers fast{std::vector<float>(static_cast<size_t>(n)), std::vector<float>(static_cast<size_t>(n), 0.0f), std::vector<float>(static_cast<size_t>(n), 0.0f)};
  for (float& p : fast.param) p = uniform();
  Buffers ref = fast;
  std::vector<float> grad(static_cast<size_t>(n));
  std::vector<uint16_t> bf16(static_cast<size_t>(n));
  ops::AdamWParams p;
  p.lr = 1e-2;
  p.weight_decay = weight_decay;
  double worst = 0;
  for (int step = 1; step <= 4; ++step) {
    for (size_t i = 0; i < grad.size(); ++i) grad[i] = (i % 7 == 0 ? 1e-9f : (i % 11 == 0 ? 0.0f : 0.1f)) * uniform();
    p.step = step;
    cpu::adamw_step(fast.param.data(), grad.data(), fast.exp_avg.data(), fast.exp_avg_sq.data(), n, p, grad_scale,
                    bf16.data());
    cpu::adamw_step_reference(ref.param.data(), grad.data(), ref.exp_avg.data(), ref.exp_avg_sq.data(), n, p,
                              grad_scale);
    worst = std::max({worst, relative(fast.param, ref.param), relative(fast.exp_avg, ref.exp_avg),
                      relative(fast.exp_avg_sq, ref.exp_avg_sq)});
    for (size_t i = 0; i < size_t(n); ++i) {
      ASSERT_EQ(bf16[i], float_to_bf16(fast.param[i])) << "element " << i << " at step " << step;
    }
  }
  EXPECT_LE(worst, 1e-6);
}

TEST(CpuAdam, MatchesTheReferenceLoop) {
  for (int64_t n : {1, 7, 15, 16, 17, 1037, 65536 + 13, 300007}) check_fast_against_reference(n, 0.1, 1.0);
  check_fast_against_reference(100003, 0.0, 0.25);
}

TEST(CpuAdam, Bf16CopyKeepsNaNAndRoundsToNearestEven) {
  const int64_t n = 19;
  std::vector<float> param(static_cast<size_t>(n), 1.0f), grad(static_cast<size_t>(n), 0.0f), m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  grad[3] = std::nanf("");
  std::vector<uint16_t> bf16(static_cast<size_t>(n));
  ops::AdamWParams p;
  p.weight_decay = 0;
  cpu::adamw_step(param.data(), grad.data(), m.data(), v.data(), n, p, 1.0, bf16.data());
  EXPECT_TRUE(std::isnan(param[3]));
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16[3])));
  for (int64_t i = 0; i < n; ++i) {
    if (i == 3) continue;
    EXPECT_EQ(bf16[size_t(i)], float_to_bf16(param[size_t(i)]));
  }
}

}  // namespace
}  // namespace zt
