// Casts between f32, f64, bf16 and f16 (round to nearest even), add, scale, sum of squares and
// the finiteness check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/optim/clip.hpp"

namespace zt {
namespace {

using test::random_tensor;
using test::Rng;
using test::values;

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

float float_of_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

const uint16_t* bits16(const Tensor& t) { return static_cast<const uint16_t*>(t.raw()); }

// Awkward floats: zeros, infinities, NaN, bf16 and f16 halfway points, f16 subnormals and
// overflow, float subnormals, then random bit patterns (finite and not).
std::vector<float> awkward_floats(Rng& rng, size_t random_count) {
  std::vector<float> v = {0.f, -0.f, kInf, -kInf, kNaN, 1.f, -1.f,
                          1.00390625f, 1.01171875f,           // bf16 ties: to even down, to even up
                          1.00048828125f, 1.00146484375f,     // f16 ties: 1 + 2^-11 and 1 + 3*2^-11
                          65504.f, 65519.f, 65520.f, 1e6f,    // f16 max, just under the rounding edge, past it
                          6.103515625e-05f, 5.9604644775390625e-08f, 2.98023223876953125e-08f, 3e-8f, 1e-10f,
                          3.3895313892515355e38f, std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(), 1e-40f};
  for (size_t i = 0; i < random_count; ++i) {
    v.push_back(float_of_bits(rng.bits()));
    v.push_back(float(rng.uniform(-70000.0, 70000.0)));
    v.push_back(float(rng.uniform(-1e-4, 1e-4)));
  }
  return v;
}

// bf16 by its definition: of the two bf16 neighbours of f (truncation, and one step away from
// zero), the nearer one, ties to the even mantissa. Past the largest bf16 the step away is 2^128,
// which the bits 0x7f80 (infinity) stand for: IEEE overflows from that halfway point on.
uint16_t bf16_nearest_even(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t down = uint16_t(u >> 16);
  if ((u & 0xffffu) == 0) return down;
  const uint16_t up = uint16_t(down + 1);
  const double x = std::fabs(double(f)), lo = std::fabs(double(bf16_to_float(down)));
  const double hi = std::isinf(bf16_to_float(up)) ? std::ldexp(1.0, 128) : std::fabs(double(bf16_to_float(up)));
  if (x - lo < hi - x) return down;
  if (hi - x < x - lo) return up;
  return (down & 1u) ? up : down;
}

TEST(Cast, F32ToBf16RoundsToNearestEven) {
  Rng rng(81);
  const std::vector<float> in = awkward_floats(rng, 20000);
  const Tensor src = Tensor::empty({int64_t(in.size())}, DType::f32);
  std::copy(in.begin(), in.end(), src.data<float>());
  const Tensor dst = Tensor::empty(src.shape(), DType::bf16);
  ops::cast(dst, src);
  for (size_t i = 0; i < in.size(); ++i) {
    if (std::isnan(in[i])) {
      ASSERT_TRUE(std::isnan(bf16_to_float(bits16(dst)[i]))) << "NaN stays NaN";
      continue;
    }
    ASSERT_EQ(bits16(dst)[i], float_to_bf16(in[i])) << "value " << in[i];
    ASSERT_EQ(bits16(dst)[i], bf16_nearest_even(in[i])) << "value " << in[i];
  }
  EXPECT_EQ(bits16(dst)[7], 0x3f80);  // 1 + 2^-8: tie to even, down
  EXPECT_EQ(bits16(dst)[8], 0x3f82);  // 1 + 3 * 2^-8: tie to even, up
}

TEST(Cast, F32ToF16RoundsToNearestEven) {
  Rng rng(82);
  const std::vector<float> in = awkward_floats(rng, 20000);
  const Tensor src = Tensor::empty({int64_t(in.size())}, DType::f32);
  std::copy(in.begin(), in.end(), src.data<float>());
  const Tensor dst = Tensor::empty(src.shape(), DType::f16);
  ops::cast(dst, src);
  // Every finite positive half, in order, to find the neighbours of a value independently.
  std::vector<double> halves;
  for (uint32_t b = 0; b < 0x7c00; ++b) halves.push_back(f16_to_float(uint16_t(b)));
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t got = bits16(dst)[i];
    if (std::isnan(in[i])) {
      ASSERT_TRUE(std::isnan(f16_to_float(got)));
      continue;
    }
    ASSERT_EQ(got, float_to_f16(in[i])) << "value " << in[i];
    const double x = std::fabs(double(in[i]));
    const uint16_t sign = std::signbit(in[i]) ? 0x8000 : 0;
    uint16_t expected;
    if (x >= 65520.0) {
      expected = 0x7c00;  // from the halfway point past 65504 on: infinity
    } else {
      const size_t hi = size_t(std::lower_bound(halves.begin(), halves.end(), x) - halves.begin());
      if (hi == halves.size()) {
        expected = 0x7bff;  // in (65504, 65520): the largest half
      } else if (halves[hi] == x || hi == 0) {
        expected = uint16_t(hi);
      } else {
        const double d_lo = x - halves[hi - 1], d_hi = halves[hi] - x;
        expected = uint16_t(d_lo < d_hi ? hi - 1 : d_hi < d_lo ? hi : (hi % 2 == 0 ? hi : hi - 1));
      }
    }
    ASSERT_EQ(got, uint16_t(sign | expected)) << "value " << in[i];
  }
}

TEST(Cast, EveryBf16AndF16WidensExactlyAndRoundTrips) {
  std::vector<uint16_t> all(0x10000);
  for (uint32_t b = 0; b < 0x10000; ++b) all[b] = uint16_t(b);
  for (DType half : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(half));
    const Tensor h = Tensor::empty({0x10000}, half);
    std::memcpy(h.raw(), all.data(), all.size() * 2);
    for (DType wide : {DType::f32, DType::f64}) {
      const Tensor w = Tensor::empty(h.shape(), wide), back = Tensor::empty(h.shape(), half);
      ops::cast(w, h);
      ops::cast(back, w);
      const std::vector<double> wv = values(w);
      for (uint32_t b = 0; b < 0x10000; ++b) {
        const float expected = half == DType::bf16 ? bf16_to_float(uint16_t(b)) : f16_to_float(uint16_t(b));
        if (std::isnan(expected)) {
          ASSERT_TRUE(std::isnan(wv[b]));
          ASSERT_TRUE(std::isnan(half == DType::bf16 ? bf16_to_float(bits16(back)[b]) : f16_to_float(bits16(back)[b])));
          continue;
        }
        ASSERT_EQ(wv[b], double(expected)) << "bits " << b;
        ASSERT_EQ(bits16(back)[b], b) << "bits " << b;
      }
    }
  }
}

TEST(Cast, BetweenHalvesAndFromF64GoThroughFloat) {
  Rng rng(83);
  const std::vector<float> in = awkward_floats(rng, 2000);
  const int64_t n = int64_t(in.size());
  // f64 -> f32 rounds once; f64 -> bf16/f16 rounds to f32 first, as torch's c10 types do.
  const Tensor d = Tensor::empty({n}, DType::f64);
  for (int64_t i = 0; i < n; ++i) {  // off the float grid, within the float range
    const double x = in[size_t(i)];
    d.data<double>()[i] = std::fabs(x) < 1e30 ? x * (1.0 + 1e-12) : x;
  }
  const Tensor f = Tensor::empty({n}, DType::f32), b = Tensor::empty({n}, DType::bf16), h = Tensor::empty({n}, DType::f16);
  ops::cast(f, d);
  ops::cast(b, d);
  ops::cast(h, d);
  for (int64_t i = 0; i < n; ++i) {
    const double x = d.data<double>()[i];
    if (std::isnan(x)) continue;
    ASSERT_EQ(f.data<float>()[i], float(x));
    ASSERT_EQ(bits16(b)[i], float_to_bf16(float(x)));
    ASSERT_EQ(bits16(h)[i], float_to_f16(float(x)));
  }
  // bf16 -> f16 and back: exact widening, then one rounding.
  const Tensor b_to_h = Tensor::empty({n}, DType::f16), h_to_b = Tensor::empty({n}, DType::bf16);
  ops::cast(b_to_h, b);
  ops::cast(h_to_b, h);
  const Tensor f_back = Tensor::empty({n}, DType::f32), d_back = Tensor::empty({n}, DType::f64);
  ops::cast(f_back, d);
  ops::cast(d_back, f);
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(in[size_t(i)])) continue;
    ASSERT_EQ(bits16(b_to_h)[i], float_to_f16(bf16_to_float(bits16(b)[i])));
    ASSERT_EQ(bits16(h_to_b)[i], float_to_bf16(f16_to_float(bits16(h)[i])));
    ASSERT_EQ(d_back.data<double>()[i], double(f.data<float>()[i]));
  }
  // Same dtype: a copy.
  const Tensor same = Tensor::empty({n}, DType::f64);
  ops::cast(same, d);
  EXPECT_EQ(std::memcmp(same.raw(), d.raw(), d.nbytes()), 0);
}

TEST(Cast, ErrorsNameTheOp) {
  using test::throws_error_naming;
  EXPECT_TRUE(throws_error_naming([] { ops::cast(Tensor::empty({3}, DType::bf16), Tensor::zeros({4}, DType::f32)); },
                                  {"cast", "(4)", "(3)"}));
  EXPECT_TRUE(throws_error_naming([] { ops::cast(Tensor::empty({3}, DType::i32), Tensor::zeros({3}, DType::f32)); },
                                  {"cast", "i32"}));
}

TEST(Elementwise, AddAndInPlaceAdd) {
  Rng rng(84);
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor a = random_tensor({5, 33}, dtype, rng), b = random_tensor({5, 33}, dtype, rng);
    const Tensor out = Tensor::empty({5, 33}, dtype);
    ops::add(out, a, b);
    const std::vector<double> va = values(a), vb = values(b);
    std::vector<double> expected(va.size());
    for (size_t i = 0; i < va.size(); ++i) expected[i] = dtype == DType::f32 ? double(float(va[i]) + float(vb[i])) : va[i] + vb[i];
    EXPECT_EQ(values(out), expected);
    // out may alias an operand.
    const Tensor acc = a.clone();
    ops::add_(acc, b);
    EXPECT_EQ(values(acc), expected);
    const Tensor alias_b = b.clone();
    ops::add(alias_b, a, alias_b);
    EXPECT_EQ(values(alias_b), expected);
  }
  using test::throws_error_naming;
  const Tensor x = Tensor::zeros({2, 3}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::add(x, x, Tensor::zeros({3, 2}, DType::f32)); }, {"add", "b", "(3, 2)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::add(x, x, Tensor::zeros({2, 3}, DType::f64)); }, {"add", "b", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::add(Tensor::zeros({2, 3}, DType::f64), x, x); }, {"add", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::add(Tensor::zeros({5}, DType::f32), x, x); }, {"add", "out"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::add_(x, Tensor::zeros({6}, DType::f32)); }, {"add", "b"}));
}

TEST(Elementwise, ScaleMultipliesInPlace) {
  Rng rng(85);
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor x = random_tensor({77}, dtype, rng);
    const std::vector<double> before = values(x);
    ops::scale_(x, 0.125);  // exact in binary
    const std::vector<double> after = values(x);
    for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(after[i], before[i] * 0.125);
  }
  EXPECT_TRUE(test::throws_error_naming([] { ops::scale_(Tensor::zeros({2}, DType::i32), 2.0); }, {"scale_", "i32"}));
}

TEST(Elementwise, SumSquaresAccumulatesInDouble) {
  Rng rng(86);
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = random_tensor({1001}, dtype, rng, -2.0, 2.0);
    double expected = 0;
    for (double v : values(x)) expected += v * v;
    EXPECT_NEAR(ops::sum_squares(x), expected, 1e-12 * expected);
  }
  // Many small squares, then a large one: in a float accumulator the small ones (0.0105 in all)
  // vanish under the large one's ulp of 8.
  std::vector<float> v(1 << 20, 1e-4f);
  v.back() = 1e4f;
  const Tensor x = Tensor::from_floats({int64_t(v.size())}, v);
  const double small = double(1e-4f) * double(1e-4f) * double(v.size() - 1);
  EXPECT_NEAR(ops::sum_squares(x) - 1e8, small, 1e-6);
  EXPECT_EQ(ops::sum_squares(Tensor::zeros({0}, DType::f32)), 0.0);
}

// The queued forms give what the host path computes: sum_squares_into the same sum, clip_scale
// optim::clip_coefficient's factor divided by the denominator (clipping and not, and no
// clipping asked for), NaN for a sum that is not finite.
TEST(Elementwise, QueuedSumOfSquaresAndClipScaleFollowTheHostPath) {
  Rng rng(87);
  const Tensor x = random_tensor({4097}, DType::bf16, rng, -3.0, 3.0);
  const Tensor sum = Tensor::zeros({1}, DType::f64), scale = Tensor::zeros({1}, DType::f32);
  ops::sum_squares_into(sum, x);
  EXPECT_EQ(sum.data<double>()[0], ops::sum_squares(x));
  const double denominator = 2.0 * 1024.0;
  const double norm = std::sqrt(sum.data<double>()[0]) / denominator;
  for (double max_norm : {0.0, norm / 3.0, norm * 3.0}) {
    SCOPED_TRACE(testing::Message() << "max_norm " << max_norm << ", norm " << norm);
    ops::clip_scale(scale, sum, max_norm, denominator);
    EXPECT_EQ(scale.data<float>()[0], float(optim::clip_coefficient(norm, max_norm) / denominator));
  }
  EXPECT_LT(scale.data<float>()[0] * denominator, 1.0 + 1e-6);
  for (double bad : {double(kNaN), double(kInf)}) {
    sum.data<double>()[0] = bad;
    ops::clip_scale(scale, sum, 1.0, denominator);
    EXPECT_TRUE(std::isnan(scale.data<float>()[0])) << bad;
  }
  using test::throws_error_naming;
  EXPECT_TRUE(throws_error_naming([&] { ops::sum_squares_into(Tensor::zeros({1}, DType::f32), x); },
                                  {"sum_squares_into", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::clip_scale(Tensor::zeros({2}, DType::f32), sum, 1.0, 1.0); },
                                  {"clip_scale", "scale", "(2)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::clip_scale(scale, sum, 1.0, 0.0); }, {"clip_scale", "denominator"}));
}

TEST(Elementwise, AllFiniteFindsNaNAndInf) {
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<float> v(1000, 1.5f);
    EXPECT_TRUE(ops::all_finite(Tensor::from_floats({1000}, v, dtype)));
    for (float bad : {kNaN, kInf, -kInf}) {
      for (size_t at : {size_t(0), size_t(517), size_t(999)}) {
        std::vector<float> w = v;
        w[at] = bad;
        EXPECT_FALSE(ops::all_finite(Tensor::from_floats({1000}, w, dtype))) << bad << " at " << at;
      }
    }
  }
  // Large values that are finite in f32 but not in f16 after the cast.
  EXPECT_TRUE(ops::all_finite(Tensor::from_floats({1}, {1e30f})));
  EXPECT_FALSE(ops::all_finite(Tensor::from_floats({1}, {1e30f}, DType::f16)));
  EXPECT_TRUE(test::throws_error_naming([] { ops::all_finite(Tensor::zeros({2}, DType::i32)); }, {"all_finite", "i32"}));
  EXPECT_TRUE(test::throws_error_naming([] { ops::sum_squares(Tensor::zeros({2}, DType::i8)); }, {"sum_squares", "i8"}));
}

}  // namespace
}  // namespace zt
