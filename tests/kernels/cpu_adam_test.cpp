// The vectorized CPU AdamW against the scalar reference loop: within 1e-6 of each buffer's largest
// magnitude (elements near zero carry the other's rounding at full size) over several
// steps, on lengths that leave tails and that split across threads, and the bf16 copy of the
// parameters equal to float_to_bf16 of the f32 result. The offload forms: bf16/f16 gradients give
// exactly the result of their f32 values, and the f32/f16 copies equal the f32 result and
// float_to_f16 of it (every rounding case, NaN included).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

// Runs body with the instruction set the machine prefers, then with AVX2 forced.
template <class F>
void on_both_instruction_sets(F&& body) {
  for (bool avx2 : {false, true}) {
    SCOPED_TRACE(avx2 ? "AVX2 forced" : "preferred instruction set");
    const bool before = cpu::adamw_force_avx2(avx2);
    body();
    cpu::adamw_force_avx2(before);
  }
}

TEST(CpuAdam, MatchesTheReferenceLoop) {
  on_both_instruction_sets([] {
    for (int64_t n : {1, 7, 15, 16, 17, 1037, 65536 + 13, 300007}) check_fast_against_reference(n, 0.1, 1.0);
    check_fast_against_reference(100003, 0.0, 0.25);
  });
}

TEST(CpuAdam, Bf16CopyKeepsNaNAndRoundsToNearestEven) {
  on_both_instruction_sets([] {
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
  });
}

uint64_t lcg(uint64_t& state) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 11;
}

// bf16 and f16 gradients are read as their f32 values: the same bits as the f32 step on the
// widened copy, for the parameters, both moments and every output dtype.
void check_half_gradients() {
  for (DType gdt : {DType::bf16, DType::f16}) {
    for (int64_t n : {int64_t(1), int64_t(15), int64_t(17), int64_t(1037), int64_t(65536 + 29)}) {
      SCOPED_TRACE(testing::Message() << dtype_name(gdt) << ", n " << n);
      uint64_t state = 7 + uint64_t(n);
      std::vector<uint16_t> half(static_cast<size_t>(n));
      std::vector<float> widened(static_cast<size_t>(n));
      Buffers a{std::vector<float>(static_cast<size_t>(n)), std::vector<float>(static_cast<size_t>(n), 0.0f),
                std::vector<float>(static_cast<size_t>(n), 0.0f)};
      for (float& p : a.param) p = float(double(lcg(state) % 2001) / 1000.0 - 1.0);
      Buffers b = a;
      std::vector<uint16_t> out_a(static_cast<size_t>(n)), out_b(static_cast<size_t>(n));
      ops::AdamWParams p;
      p.lr = 3e-3;
      p.weight_decay = 0.1;
      for (int step = 1; step <= 3; ++step) {
        for (size_t i = 0; i < half.size(); ++i) {
          const float g = float(double(lcg(state) % 20001) / 1e4 - 1.0) * (i % 5 == 0 ? 1e-4f : 0.3f);
          half[i] = gdt == DType::bf16 ? float_to_bf16(g) : float_to_f16(g);
          widened[i] = gdt == DType::bf16 ? bf16_to_float(half[i]) : f16_to_float(half[i]);
        }
        p.step = step;
        cpu::adamw_step(a.param.data(), half.data(), gdt, a.exp_avg.data(), a.exp_avg_sq.data(), n, p, 0.5,
                        out_a.data(), gdt);
        cpu::adamw_step(b.param.data(), widened.data(), DType::f32, b.exp_avg.data(), b.exp_avg_sq.data(), n, p, 0.5,
                        nullptr, DType::f32);
        ASSERT_EQ(0, std::memcmp(a.param.data(), b.param.data(), a.param.size() * sizeof(float))) << "step " << step;
        ASSERT_EQ(0, std::memcmp(a.exp_avg.data(), b.exp_avg.data(), a.param.size() * sizeof(float)));
        ASSERT_EQ(0, std::memcmp(a.exp_avg_sq.data(), b.exp_avg_sq.data(), a.param.size() * sizeof(float)));
        for (size_t i = 0; i < half.size(); ++i)
          ASSERT_EQ(out_a[i], gdt == DType::bf16 ? float_to_bf16(b.param[i]) : float_to_f16(b.param[i])) << "element " << i;
      }
    }
  }
}

TEST(CpuAdam, HalfGradientsStepAsTheirF32Values) { on_both_instruction_sets(check_half_gradients); }

// With lr 0 and zero gradients the step leaves each parameter as it is, so the copy is the
// conversion of arbitrary floats: random bit patterns over the whole range (subnormals, halfway
// cases, values past f16's range, infinities, NaNs with payloads) against float_to_f16, and the
// f32 copy bit for bit.
void check_copies() {
  const int64_t n = 200003;
  std::vector<float> param(static_cast<size_t>(n)), grad(static_cast<size_t>(n), 0.0f),
      m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  uint64_t state = 99;
  for (size_t i = 0; i < param.size(); ++i) {
    uint32_t bits = uint32_t(lcg(state));
    if (i % 3 == 0) bits = (bits & 0x80001fffu) | ((0x33u + uint32_t(i % 21)) << 23);  // near f16's subnormal range
    if (i % 3 == 1) bits = (bits & 0x80ffe000u) | 0x47000000u | 0x1000u;  // halfway cases near 65504
    std::memcpy(&param[i], &bits, sizeof bits);
  }
  const float specials[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 5.9604645e-8f, 2.9802322e-8f,
                            2.9802326e-8f, 6.1035156e-5f, INFINITY, -INFINITY, NAN, -NAN};
  for (size_t i = 0; i < std::size(specials); ++i) param[i] = specials[i];
  std::vector<float> before = param, copy(static_cast<size_t>(n));
  std::vector<uint16_t> f16(static_cast<size_t>(n));
  ops::AdamWParams p;
  p.lr = 0;
  p.weight_decay = 0;
  cpu::adamw_step(param.data(), grad.data(), DType::f32, m.data(), v.data(), n, p, 1.0, f16.data(), DType::f16);
  cpu::adamw_step(param.data(), grad.data(), DType::f32, m.data(), v.data(), n, p, 1.0, copy.data(), DType::f32);
  for (size_t i = 0; i < param.size(); ++i) {
    if (!std::isnan(before[i])) {
      ASSERT_EQ(0, std::memcmp(&param[i], &before[i], sizeof(float))) << "element " << i;
    }
    ASSERT_EQ(f16[i], float_to_f16(param[i])) << "element " << i << " = " << param[i];
    ASSERT_EQ(0, std::memcmp(&copy[i], &param[i], sizeof(float))) << "element " << i;
  }
}

TEST(CpuAdam, F16AndF32CopiesRoundAsTheScalarConversions) { on_both_instruction_sets(check_copies); }

}  // namespace
}  // namespace zt
