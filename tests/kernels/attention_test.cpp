// Causal attention (MHA, GQA, MQA) and rotary embeddings: forwards against naive loops with an
// explicit mask and Hugging Face's rotate_half, backwards (also the two together) against finite
// differences, errors.
// Letters: B batch, T sequence, NH query heads, NKV key/value heads, HD head size.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gradcheck.hpp"
#include "zt/kernels/ops.hpp"

namespace zt {
namespace {

using test::close_by_norm;
using test::random_tensor;
using test::Rng;
using test::values;

struct AttentionShape {
  int64_t b, t, nh, nkv, hd;
};

std::ostream& operator<<(std::ostream& os, const AttentionShape& s) {
  return os << "B=" << s.b << " T=" << s.t << " NH=" << s.nh << " NKV=" << s.nkv << " HD=" << s.hd;
}

struct AttentionRef {
  std::vector<double> out, att;  // (B, T, NH*HD), (B, NH, T, T)
};

// Scores with an explicit causal mask (-inf above the diagonal), softmax, then the weighted
// sum of values; query head h reads key/value head h / (NH / NKV).
AttentionRef naive_attention(const Tensor& qkv, const AttentionShape& s) {
  const std::vector<double> x = values(qkv);
  const int64_t width = (s.nh + 2 * s.nkv) * s.hd;
  auto at = [&](int64_t b, int64_t t, int64_t head, int64_t d) { return x[size_t((b * s.t + t) * width + head * s.hd + d)]; };
  AttentionRef r{std::vector<double>(size_t(s.b * s.t * s.nh * s.hd)), std::vector<double>(size_t(s.b * s.nh * s.t * s.t))};
  std::vector<double> scores(static_cast<size_t>(s.t));
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.nh; ++h) {
      const int64_t kv = h / (s.nh / s.nkv);
      const int64_t k_head = s.nh + kv, v_head = s.nh + s.nkv + kv;
      for (int64_t i = 0; i < s.t; ++i) {
        double max = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < s.t; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < s.hd; ++d) dot += at(b, i, h, d) * at(b, j, k_head, d);
          scores[size_t(j)] = j > i ? -std::numeric_limits<double>::infinity() : dot / std::sqrt(double(s.hd));
          max = std::max(max, scores[size_t(j)]);
        }
        double sum = 0;
        for (double& v : scores) sum += (v = std::exp(v - max));
        for (int64_t j = 0; j < s.t; ++j) r.att[size_t(((b * s.nh + h) * s.t + i) * s.t + j)] = scores[size_t(j)] / sum;
        for (int64_t d = 0; d < s.hd; ++d) {
          double o = 0;
          for (int64_t j = 0; j < s.t; ++j) o += scores[size_t(j)] / sum * at(b, j, v_head, d);
          r.out[size_t((b * s.t + i) * s.nh * s.hd + h * s.hd + d)] = o;
        }
      }
    }
  }
  return r;
}

Tensor qkv_of(const AttentionShape& s, DType dtype, Rng& rng) {
  return random_tensor({s.b, s.t, (s.nh + 2 * s.nkv) * s.hd}, dtype, rng, -2.0, 2.0);
}

TEST(Attention, ForwardMatchesNaiveMaskedSoftmax) {
  Rng rng(31);
  const AttentionShape shapes[] = {
      {2, 13, 4, 4, 8},   // MHA
      {2, 13, 4, 2, 8},   // GQA
      {1, 33, 6, 1, 12},  // MQA, T past a BLAS block
      {3, 1, 2, 2, 6},    // one token: each query sees only itself
      {2, 7, 6, 3, 5},    // odd head size
  };
  for (const AttentionShape& s : shapes) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " " << s);
      const Tensor qkv = qkv_of(s, dtype, rng);
      const Tensor out = Tensor::empty({s.b, s.t, s.nh * s.hd}, dtype), att = Tensor::empty({s.b, s.nh, s.t, s.t}, dtype);
      att.fill_(123.0);  // the masked entries must be written as zeros
      ops::attention_forward(out, att, qkv, s.nh, s.nkv);
      const AttentionRef ref = naive_attention(qkv, s);
      const double tol = dtype == DType::f32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(close_by_norm(out, ref.out, tol));
      EXPECT_TRUE(close_by_norm(att, ref.att, tol));
    }
  }
}

class AttentionGradTest : public ::testing::TestWithParam<AttentionShape> {};

TEST_P(AttentionGradTest, BackwardMatchesFiniteDifferences) {
  const AttentionShape s = GetParam();
  Rng rng(32);
  const Tensor qkv = qkv_of(s, DType::f64, rng);
  const Tensor r = random_tensor({s.b, s.t, s.nh * s.hd}, DType::f64, rng);
  const Tensor out = Tensor::empty(r.shape(), DType::f64), att = Tensor::empty({s.b, s.nh, s.t, s.t}, DType::f64);
  const Tensor dqkv = Tensor::empty(qkv.shape(), DType::f64);
  auto loss = [&] {
    ops::attention_forward(out, att, qkv, s.nh, s.nkv);
    return test::sum_product(out, r);
  };
  auto backward = [&] {
    ops::attention_forward(out, att, qkv, s.nh, s.nkv);
    ops::attention_backward(dqkv, r, qkv, out, att, s.nh, s.nkv);
  };
  test::check_gradients({{"qkv", qkv, dqkv, false}}, loss, backward, 1e-5);
}

// The backward forms D = rowsum(P * dP) from the output it is given (D_i = dout_i . out_i): an
// output other than the forward's gives another gradient, so the argument is really read.
TEST(Attention, BackwardReadsTheForwardsOutput) {
  const AttentionShape s{2, 6, 4, 2, 4};
  Rng rng(35);
  const Tensor qkv = qkv_of(s, DType::f64, rng);
  const Tensor dout = random_tensor({s.b, s.t, s.nh * s.hd}, DType::f64, rng);
  const Tensor out = Tensor::empty(dout.shape(), DType::f64), att = Tensor::empty({s.b, s.nh, s.t, s.t}, DType::f64);
  ops::attention_forward(out, att, qkv, s.nh, s.nkv);
  const Tensor dqkv = Tensor::empty(qkv.shape(), DType::f64), other = Tensor::empty(qkv.shape(), DType::f64);
  ops::attention_backward(dqkv, dout, qkv, out, att, s.nh, s.nkv);
  const Tensor shifted = out.clone();
  ops::scale_(shifted, 1.5);
  ops::attention_backward(other, dout, qkv, shifted, att, s.nh, s.nkv);
  EXPECT_GT(test::relative_error(values(other), values(dqkv)), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Kernels, AttentionGradTest,
                         ::testing::Values(AttentionShape{2, 5, 2, 2, 4}, AttentionShape{2, 5, 4, 2, 4},
                                           AttentionShape{2, 5, 4, 1, 4}),
                         [](const ::testing::TestParamInfo<AttentionShape>& info) {
                           return "NH" + std::to_string(info.param.nh) + "_NKV" + std::to_string(info.param.nkv);
                         });

TEST(Attention, ArgumentErrorsNameTheOpAndArgument) {
  using test::throws_error_naming;
  const Tensor qkv = Tensor::zeros({1, 3, 16}, DType::f32);
  const Tensor out = Tensor::zeros({1, 3, 8}, DType::f32), att = Tensor::zeros({1, 4, 3, 3}, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_forward(out, att, qkv, 4, 3); },
                                  {"attention_forward", "n_head 4", "n_kv_head 3"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_forward(out, att, Tensor::zeros({1, 3, 15}, DType::f32), 4, 2); },
                                  {"attention_forward", "qkv width 15"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_forward(out, att, qkv.reshape({3, 16}), 4, 2); },
                                  {"attention_forward", "qkv"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_forward(out, Tensor::zeros({1, 2, 3, 3}, DType::f32), qkv, 4, 2); },
                                  {"attention_forward", "att", "(1, 4, 3, 3)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_forward(out.to(DType::f64), att, qkv, 4, 2); },
                                  {"attention_forward", "out", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_backward(out, out, qkv, out, att, 4, 2); },
                                  {"attention_backward", "dqkv"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_backward(qkv, qkv, qkv, out, att, 4, 2); },
                                  {"attention_backward", "dout"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_backward(qkv.clone(), out, qkv, qkv, att, 4, 2); },
                                  {"attention_backward", "out has shape", "(1, 3, 8)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::attention_backward(qkv.clone(), out, qkv, Tensor(), att, 4, 2); },
                                  {"attention_backward", "out is undefined"}));
}

// ---- rope -----------------------------------------------------------------------------------

// inv_freq[i] = theta^(-2i/HD), as Hugging Face builds it.
Tensor inv_freq_of(int64_t hd, double theta, DType dtype) {
  std::vector<double> f(static_cast<size_t>(hd / 2));
  for (int64_t i = 0; i < hd / 2; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(hd));
  return test::tensor_of({hd / 2}, f, dtype);
}

// Hugging Face Llama: emb = cat(freqs, freqs); x * cos(emb) + rotate_half(x) * sin(emb), with
// rotate_half(x) = cat(-x[HD/2:], x[:HD/2]); heads past n_rotated are left as they are.
std::vector<double> naive_rope(const Tensor& x, const Tensor& inv_freq, int64_t n_rotated, int64_t offset) {
  const int64_t b = x.size(0), t = x.size(1), heads = x.size(2), hd = x.size(3), half = hd / 2;
  const std::vector<double> in = values(x), f = values(inv_freq);
  std::vector<double> out = in, emb(static_cast<size_t>(hd)), rotated(static_cast<size_t>(hd));
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t ti = 0; ti < t; ++ti) {
      for (int64_t i = 0; i < half; ++i) emb[size_t(i)] = emb[size_t(i + half)] = double(offset + ti) * f[size_t(i)];
      for (int64_t h = 0; h < n_rotated; ++h) {
        const size_t base = size_t(((bi * t + ti) * heads + h) * hd);
        for (int64_t d = 0; d < hd; ++d) rotated[size_t(d)] = d < half ? -in[base + size_t(d + half)] : in[base + size_t(d - half)];
        for (int64_t d = 0; d < hd; ++d)
          out[base + size_t(d)] = in[base + size_t(d)] * std::cos(emb[size_t(d)]) + rotated[size_t(d)] * std::sin(emb[size_t(d)]);
      }
    }
  }
  return out;
}

TEST(Rope, ForwardMatchesRotateHalf) {
  Rng rng(33);
  struct Case { int64_t b, t, heads, rotated, hd, offset; };
  // Packed qkv: NH + NKV of NH + 2*NKV heads rotated; a nonzero offset as in generation.
  const Case cases[] = {{2, 9, 8, 6, 8, 0}, {1, 5, 3, 2, 6, 7}, {3, 4, 5, 5, 2, 1}};
  for (const Case& c : cases) {
    for (DType dtype : {DType::f32, DType::f64}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " heads=" << c.heads << " HD=" << c.hd << " offset=" << c.offset);
      const Tensor x = random_tensor({c.b, c.t, c.heads, c.hd}, dtype, rng);
      const Tensor inv_freq = inv_freq_of(c.hd, 10000.0, dtype);
      const std::vector<double> expected = naive_rope(x, inv_freq, c.rotated, c.offset);
      const Tensor y = x.clone();
      ops::rope_forward(y, inv_freq, c.rotated, c.offset);
      EXPECT_TRUE(close_by_norm(y, expected, dtype == DType::f32 ? 1e-5 : 1e-12));
      // The heads past n_rotated (the values) are untouched, bit for bit.
      const std::vector<double> in = values(x), got = values(y);
      for (size_t row = 0; row < size_t(c.b * c.t); ++row)
        for (size_t i = size_t(c.rotated * c.hd); i < size_t(c.heads * c.hd); ++i)
          ASSERT_EQ(got[row * size_t(c.heads * c.hd) + i], in[row * size_t(c.heads * c.hd) + i]);
      // The backward is the inverse rotation.
      ops::rope_backward(y, inv_freq, c.rotated, c.offset);
      EXPECT_TRUE(close_by_norm(y, x, dtype == DType::f32 ? 1e-6 : 1e-14));
    }
  }
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  const int64_t b = 2, t = 5, heads = 5, rotated = 4, hd = 6, offset = 2;
  Rng rng(34);
  const Tensor x = random_tensor({b, t, heads, hd}, DType::f64, rng);
  const Tensor r = random_tensor(x.shape(), DType::f64, rng);
  const Tensor inv_freq = inv_freq_of(hd, 10000.0, DType::f64);
  const Tensor dx = Tensor::empty(x.shape(), DType::f64);
  auto loss = [&] {
    const Tensor y = x.clone();
    ops::rope_forward(y, inv_freq, rotated, offset);
    return test::sum_product(y, r);
  };
  auto backward = [&] {
    dx.copy_from(r);
    ops::rope_backward(dx, inv_freq, rotated, offset);
  };
  test::check_gradients({{"x", x, dx, false}}, loss, backward);
}

// The backward given the rotation (ops::RotaryPositions) is the gradient of attention after
// rope_forward on the query and key heads, with respect to the unrotated qkv: MHA and GQA, an
// offset as in generation.
TEST(Rope, AttentionBackwardWithRotaryMatchesFiniteDifferences) {
  for (const AttentionShape& s : {AttentionShape{2, 5, 2, 2, 4}, AttentionShape{1, 6, 4, 2, 6}}) {
    SCOPED_TRACE(testing::Message() << s);
    Rng rng(36);
    const int64_t heads = s.nh + 2 * s.nkv, offset = 3;
    const Tensor qkv = qkv_of(s, DType::f64, rng);
    const Tensor r = random_tensor({s.b, s.t, s.nh * s.hd}, DType::f64, rng);
    const Tensor inv_freq = inv_freq_of(s.hd, 10000.0, DType::f64);
    const Tensor out = Tensor::empty(r.shape(), DType::f64), att = Tensor::empty({s.b, s.nh, s.t, s.t}, DType::f64);
    const Tensor dqkv = Tensor::empty(qkv.shape(), DType::f64);
    Tensor rotated;
    auto forward = [&] {
      rotated = qkv.clone();
      ops::rope_forward(rotated.reshape({s.b, s.t, heads, s.hd}), inv_freq, s.nh + s.nkv, offset);
      ops::attention_forward(out, att, rotated, s.nh, s.nkv);
    };
    auto loss = [&] {
      forward();
      return test::sum_product(out, r);
    };
    auto backward = [&] {
      forward();
      const ops::RotaryPositions rotary{inv_freq, offset};
      ops::attention_backward(dqkv, r, rotated, out, att, s.nh, s.nkv, &rotary);
    };
    test::check_gradients({{"qkv", qkv, dqkv, false}}, loss, backward, 1e-5);
  }
  const Tensor qkv = Tensor::zeros({1, 3, 16}, DType::f32), out = Tensor::zeros({1, 3, 8}, DType::f32);
  const Tensor att = Tensor::zeros({1, 4, 3, 3}, DType::f32), wrong = inv_freq_of(4, 10000.0, DType::f32);
  const ops::RotaryPositions rotary{wrong, 0};  // HD 2 wants 1 frequency
  EXPECT_TRUE(test::throws_error_naming(
      [&] { ops::attention_backward(qkv.clone(), out, qkv, out, att, 4, 2, &rotary); },
      {"attention_backward", "rotary inv_freq", "(1)"}));
}

TEST(Rope, ArgumentErrorsNameTheOpAndArgument) {
  using test::throws_error_naming;
  const Tensor x = Tensor::zeros({1, 2, 3, 4}, DType::f32), f = inv_freq_of(4, 10000.0, DType::f32);
  EXPECT_TRUE(throws_error_naming([&] { ops::rope_forward(x, inv_freq_of(6, 1e4, DType::f32), 2, 0); },
                                  {"rope_forward", "inv_freq", "(3)", "(2)"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rope_forward(x, f.to(DType::f64), 2, 0); },
                                  {"rope_forward", "inv_freq", "f64"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rope_forward(x, f, 4, 0); }, {"rope_forward", "n_rotated_heads 4"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rope_backward(Tensor::zeros({1, 2, 3, 5}, DType::f32), f, 2, 0); },
                                  {"rope_backward", "head size 5"}));
  EXPECT_TRUE(throws_error_naming([&] { ops::rope_backward(x.reshape({2, 3, 4}), f, 2, 0); }, {"rope_backward", "dx"}));
}

}  // namespace
}  // namespace zt
